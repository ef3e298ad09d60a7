{{/*
Each service's environment, in the variables its settings read (services/NAME/settings.py,
gateway/settings.py): prefix, nested blocks with "__". Database URLs and API keys come
from Secrets.
*/}}

{{- define "ptychoagent.env.retriever" -}}
{{- $v := .Values.retriever }}
{{ include "ptychoagent.commonEnv" (dict "root" . "prefix" "RETRIEVER" "acceptsKeys" true) }}
{{ include "ptychoagent.secretEnv" (dict "name" "RETRIEVER_DATABASE_URL" "secret" .Values.secrets.database.name "key" .Values.secrets.database.key) }}
- name: RETRIEVER_SEMANTIC
  value: {{ $v.semantic | toString | quote }}
{{- end }}

{{- define "ptychoagent.diagnosis.backend" -}}
{{- $v := .Values.diagnosis }}
{{- if $v.defaultBackend }}
{{- $v.defaultBackend }}
{{- else if or .Values.vllm.models.vlm.enabled $v.backend.baseUrl }}
{{- "vlm" }}
{{- else }}
{{- "classifier" }}
{{- end }}
{{- end }}

{{- define "ptychoagent.env.diagnosis" -}}
{{- $v := .Values.diagnosis }}
{{ include "ptychoagent.commonEnv" (dict "root" . "prefix" "DIAGNOSIS" "acceptsKeys" true) }}
- name: DIAGNOSIS_DEFAULT_BACKEND
  value: {{ include "ptychoagent.diagnosis.backend" . | quote }}
- name: DIAGNOSIS_CLASSIFIER
  value: {{ $v.classifier | quote }}
- name: DIAGNOSIS_MAX_K
  value: {{ $v.maxK | toString | quote }}
{{- if or .Values.vllm.models.vlm.enabled $v.backend.baseUrl }}
{{ include "ptychoagent.backendEnv" (dict "root" . "prefix" "DIAGNOSIS" "component" "diagnosis" "model" "vlm" "backend" $v.backend) }}
{{- else if eq (include "ptychoagent.diagnosis.backend" .) "vlm" }}
{{- fail "diagnosis.defaultBackend is vlm but there is no VLM: enable vllm.models.vlm or set diagnosis.backend.baseUrl" }}
{{- end }}
{{ include "ptychoagent.upstreamEnv" (dict "root" . "prefix" "DIAGNOSIS" "block" "RETRIEVER" "component" "retriever" "port" .Values.retriever.port) }}
{{- end }}

{{- define "ptychoagent.env.agent" -}}
{{- $v := .Values.agent }}
{{ include "ptychoagent.commonEnv" (dict "root" . "prefix" "AGENT" "acceptsKeys" true) }}
{{ include "ptychoagent.backendEnv" (dict "root" . "prefix" "AGENT" "component" "agent" "model" "llm" "backend" $v.backend) }}
{{ include "ptychoagent.upstreamEnv" (dict "root" . "prefix" "AGENT" "block" "RETRIEVER" "component" "retriever" "port" .Values.retriever.port) }}
{{- end }}

{{- define "ptychoagent.env.gateway" -}}
{{- $v := .Values.gateway }}
{{ include "ptychoagent.commonEnv" (dict "root" . "prefix" "GATEWAY" "acceptsKeys" false) }}
{{ include "ptychoagent.secretEnv" (dict "name" "GATEWAY_DATABASE_URL" "secret" .Values.secrets.database.name "key" .Values.secrets.database.key) }}
{{ include "ptychoagent.upstreamEnv" (dict "root" . "prefix" "GATEWAY" "block" "DIAGNOSIS" "component" "diagnosis" "port" .Values.diagnosis.port) }}
{{ include "ptychoagent.upstreamEnv" (dict "root" . "prefix" "GATEWAY" "block" "AGENT" "component" "agent" "port" .Values.agent.port) }}
{{ include "ptychoagent.upstreamEnv" (dict "root" . "prefix" "GATEWAY" "block" "RETRIEVER" "component" "retriever" "port" .Values.retriever.port) }}
{{- with $v.agentTimeoutS }}
- name: GATEWAY_AGENT__TIMEOUT_S
  value: {{ . | toString | quote }}
{{- end }}
- name: GATEWAY_REPORTS_DIR
  value: {{ $v.reports.mountPath | quote }}
{{- end }}

{{/* A vLLM server: (dict "root" $ "lora" BOOL) */}}
{{- define "ptychoagent.env.vllm" -}}
{{- $root := .root }}
- name: HF_HOME
  value: {{ printf "%s/huggingface" $root.Values.vllm.modelCacheMountPath | quote }}
- name: HF_HUB_OFFLINE
  value: {{ ternary "1" "0" $root.Values.vllm.offline | quote }}
- name: VLLM_NO_USAGE_STATS
  value: "1"
- name: VLLM_ALLOW_RUNTIME_LORA_UPDATING
  value: {{ ternary "True" "False" .lora | quote }}
{{- if $root.Values.secrets.huggingFace.name }}
{{ include "ptychoagent.secretEnv" (dict "name" "HF_TOKEN" "secret" $root.Values.secrets.huggingFace.name "key" $root.Values.secrets.huggingFace.key) }}
{{- end }}
{{- if $root.Values.secrets.vllmApiKey.name }}
{{ include "ptychoagent.secretEnv" (dict "name" "VLLM_API_KEY" "secret" $root.Values.secrets.vllmApiKey.name "key" $root.Values.secrets.vllmApiKey.key) }}
{{- end }}
{{- end }}
