{{/*
Names, labels, images and the environment of each service. Secrets are referenced
(secretKeyRef), never written here: the chart creates no Secret.
*/}}

{{- define "ptychoagent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ptychoagent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ptychoagent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of a component's objects: (dict "root" $ "component" "gateway") */}}
{{- define "ptychoagent.componentName" -}}
{{- printf "%s-%s" (include "ptychoagent.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ptychoagent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ptychoagent.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ptychoagent.labels" -}}
helm.sh/chart: {{ include "ptychoagent.chart" .root }}
{{ include "ptychoagent.selectorLabels" . }}
app.kubernetes.io/part-of: ptychoagent
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "ptychoagent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ptychoagent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference with a pinned tag: (dict "image" .Values.image "default" .Chart.AppVersion) */}}
{{- define "ptychoagent.image" -}}
{{- $tag := toString (default .default .image.tag) }}
{{- if or (not $tag) (eq $tag "latest") }}
{{- fail (printf "image %s needs a pinned tag (not %q)" .image.repository $tag) }}
{{- end }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}

{{/* A service's URL inside the cluster: (dict "root" $ "component" "retriever" "port" 8101) */}}
{{- define "ptychoagent.url" -}}
{{- printf "http://%s:%v" (include "ptychoagent.componentName" .) .port }}
{{- end }}

{{/* One env entry from a Secret: (dict "name" "X" "secret" "s" "key" "k") */}}
{{- define "ptychoagent.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "%s needs a Secret name" .name) .secret }}
      key: {{ required (printf "%s needs a Secret key" .name) .key }}
{{- end }}

{{/* Plain env entries from a map; secrets are refused here (use the secrets block). */}}
{{- define "ptychoagent.extraEnv" -}}
{{- range $name, $value := . }}
{{- if regexMatch "(DATABASE_URL|API_KEY|TOKEN|PASSWORD)" (upper $name) }}
{{- fail (printf "extraEnv.%s looks like a secret: reference a Secret instead (values: secrets)" $name) }}
{{- end }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* A container's env list: the chart's entries (YAML text) and extraEnv (a map); a
variable set twice is refused. (dict "base" TEXT "extra" MAP) */}}
{{- define "ptychoagent.envList" -}}
{{- $env := concat (fromYamlArray .base | default list) (fromYamlArray (include "ptychoagent.extraEnv" .extra) | default list) }}
{{- $seen := dict }}
{{- range $env }}
{{- if hasKey $seen .name }}
{{- fail (printf "env %s is set twice (extraEnv repeats a variable the chart sets)" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* What every service has: environment, log format, the keys it accepts. */}}
{{- define "ptychoagent.commonEnv" -}}
{{- $root := .root }}
- name: {{ .prefix }}_ENVIRONMENT
  value: {{ $root.Values.environment | quote }}
- name: {{ .prefix }}_LOG_FORMAT
  value: {{ $root.Values.logFormat | quote }}
{{- if .acceptsKeys }}
{{ include "ptychoagent.secretEnv" (dict "name" (printf "%s_API_KEYS" .prefix) "secret" $root.Values.secrets.serviceKeys.name "key" $root.Values.secrets.serviceKeys.acceptedKey) }}
{{- end }}
{{- end }}

{{/* A client block (PREFIX_BLOCK__BASE_URL and __API_KEY) for another service of the chart. */}}
{{- define "ptychoagent.upstreamEnv" -}}
{{- $root := .root }}
- name: {{ .prefix }}_{{ .block }}__BASE_URL
  value: {{ include "ptychoagent.url" (dict "root" $root "component" .component "port" .port) | quote }}
{{ include "ptychoagent.secretEnv" (dict "name" (printf "%s_%s__API_KEY" .prefix .block) "secret" $root.Values.secrets.serviceKeys.name "key" $root.Values.secrets.serviceKeys.clientKey) }}
{{- end }}

{{/* A backend block (PREFIX_BACKEND__…) pointing at a vLLM model of the chart, or at
an external engine (backend.baseUrl). */}}
{{- define "ptychoagent.backendEnv" -}}
{{- $root := .root }}
{{- $model := index $root.Values.vllm.models .model }}
{{- $baseUrl := .backend.baseUrl }}
{{- if not $baseUrl }}
{{- if not $model.enabled }}
{{- fail (printf "%s needs an engine: enable vllm.models.%s or set %s.backend.baseUrl" .component .model .component) }}
{{- end }}
{{- $baseUrl = include "ptychoagent.url" (dict "root" $root "component" (printf "vllm-%s" .model) "port" $root.Values.vllm.port) }}
{{- end }}
- name: {{ .prefix }}_BACKEND__BASE_URL
  value: {{ $baseUrl | quote }}
- name: {{ .prefix }}_BACKEND__MODEL
  value: {{ default $model.servedModelName .backend.model | quote }}
{{- with .backend.timeoutS }}
- name: {{ $.prefix }}_BACKEND__TIMEOUT_S
  value: {{ . | toString | quote }}
{{- end }}
{{- if $root.Values.secrets.vllmApiKey.name }}
{{ include "ptychoagent.secretEnv" (dict "name" (printf "%s_BACKEND__API_KEY" .prefix) "secret" $root.Values.secrets.vllmApiKey.name "key" $root.Values.secrets.vllmApiKey.key) }}
{{- end }}
{{- end }}

{{/* prometheus.io scrape annotations for a pod template. */}}
{{- define "ptychoagent.scrapeAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}
