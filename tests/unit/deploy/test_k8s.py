"""deploy/k8s: the Helm chart lints and renders for the default, small and large sites;
every rendered manifest validates against Kubernetes' OpenAPI schemas (offline, strict);
and the rendered objects keep the deployment's rules: probes and requests on every
Deployment, secrets only by reference, pinned images, the vLLM autoscaler on
vllm_num_requests_waiting, Services and URLs that meet, and settings the services accept.

Helm is Helm's own Go SDK (helm-python-sdk, `helm lint` and `helm template` as library
calls); the schemas come with kubernetes-validate. The ServiceMonitor is a CRD, not in
Kubernetes' schemas: the schema validation skips it and the tests below check it.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "k8s" / "ptychoagent"
SITES = {
    "default": None,
    "small": CHART / "values-small.yaml",
    "large": CHART / "values-large.yaml",
}
RELEASE, NAMESPACE = "ptychoagent", "ptychoagent"
KUBE_VERSIONS = ("1.27.0", "1.37.0")
"""The chart's kubeVersion floor and the newest schemas kubernetes-validate ships."""
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
"""Kinds outside Kubernetes' own schemas: skipped by the schema check, tested here."""
SERVICES = ("retriever", "diagnosis", "agent", "gateway")
SECRET_NAME = re.compile(r"DATABASE_URL|API_KEY|TOKEN|PASSWORD")
WAITING_METRIC = "vllm_num_requests_waiting"


def tool(module: str, package: str) -> ModuleType:
    """Import a tool the tests need; fail (not skip) with how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(
            f"{package} is not installed: run `make tools` (it is pinned in pyproject's dev extra)",
            pytrace=False,
        )


def helm() -> ModuleType:
    return tool("helm_python", "helm-python-sdk (Helm's Go SDK: lint and template)")


@dataclass(frozen=True)
class Rendered:
    values: dict[str, Any]
    objects: list[dict[str, Any]]
    notes: str

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
        return found[0]

    def component(self, kind: str, component: str) -> dict[str, Any]:
        found = [o for o in self.kind(kind) if labels(o).get(COMPONENT) == component]
        assert len(found) == 1, f"{kind} of {component}: {len(found)} objects"
        return found[0]


COMPONENT = "app.kubernetes.io/component"


def labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("labels") or {})


def site_values(site: str) -> dict[str, Any]:
    path = SITES[site]
    return {} if path is None else dict(yaml.safe_load(path.read_text()) or {})


@functools.cache
def render(site: str) -> Rendered:
    """`helm template` of the chart with the site's values."""
    sdk = helm()
    values = site_values(site)
    with sdk.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        merged = chart.merge_values(values)
    objects = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return Rendered(merged, objects, notes)


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"])


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    return [*spec.get("initContainers", []), *spec["containers"]]


def workloads(rendered: Rendered) -> list[dict[str, Any]]:
    return rendered.kind("Deployment") + rendered.kind("Job")


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = container.get("env", [])
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"{container['name']}: an env variable twice"
    return {e["name"]: e for e in entries}


def vllm_args(container: dict[str, Any]) -> dict[str, list[str]]:
    """The server's flags and their values (``--enable-lora`` → [])."""
    parsed: dict[str, list[str]] = {}
    flag = ""
    for arg in container["args"]:
        if arg.startswith("--"):
            flag = arg
            parsed[flag] = []
        else:
            parsed[flag].append(arg)
    return parsed


@pytest.fixture(params=list(SITES))
def site(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rendered(site: str) -> Rendered:
    return render(site)


# --------------------------------------------------------------------------- helm


def test_helm_lint_passes(site: str) -> None:
    report = helm().lint(CHART, site_values(site), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, f"helm lint --strict ({site}):\n" + "\n".join(map(str, problems))


def test_the_sites_render_what_they_promise(rendered: Rendered, site: str) -> None:
    deployments = {labels(d)[COMPONENT] for d in rendered.kind("Deployment")}
    services = {labels(s)[COMPONENT] for s in rendered.kind("Service")}
    assert services == deployments
    autoscaled = {labels(h)[COMPONENT] for h in rendered.kind("HorizontalPodAutoscaler")}
    gpus = {
        labels(d)[COMPONENT]: d["spec"].get("replicas")
        for d in rendered.kind("Deployment")
        if labels(d)[COMPONENT].startswith("vllm-")
    }
    assert not rendered.kind("Secret"), "the chart must not carry secrets"
    assert [j["metadata"]["name"] for j in rendered.kind("Job")] == [f"{RELEASE}-retriever-ingest"]
    if site == "default":
        assert deployments == {*SERVICES, "vllm-llm", "vllm-vlm"}
        assert not autoscaled
        assert not rendered.kind("Ingress")
        assert not rendered.kind("ServiceMonitor")
    if site == "small":
        assert deployments == {*SERVICES, "vllm-llm"}, "one GPU: the LLM only"
        assert gpus == {"vllm-llm": 1}
        assert not autoscaled
        assert all(d["spec"]["replicas"] == 1 for d in rendered.kind("Deployment"))
        assert not rendered.kind("ServiceMonitor")
        diagnosis = env_of(containers(rendered.component("Deployment", "diagnosis"))[0])
        assert diagnosis["DIAGNOSIS_DEFAULT_BACKEND"]["value"] == "classifier"
        assert "DIAGNOSIS_BACKEND__BASE_URL" not in diagnosis
    if site == "large":
        assert deployments == {*SERVICES, "vllm-llm", "vllm-vlm"}
        assert autoscaled == {"vllm-llm", "vllm-vlm"}
        assert len(rendered.kind("ServiceMonitor")) == 1
        assert rendered.kind("Ingress")[0]["spec"]["tls"]
        assert all(h["spec"]["minReplicas"] >= 2 for h in rendered.kind("HorizontalPodAutoscaler"))
        assert all(
            d["spec"]["replicas"] >= 2
            for d in rendered.kind("Deployment")
            if labels(d)[COMPONENT] in SERVICES
        )


# ------------------------------------------------------------------- the schemas


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(
    rendered: Rendered, kube_version: str
) -> None:
    validator = tool("kubernetes_validate", "kubernetes-validate")
    checked, problems = 0, []
    for obj in rendered.objects:
        if (obj["apiVersion"], obj["kind"]) in CRDS:
            continue
        try:
            validator.validate(obj, kube_version, strict=True)
        except validator.ValidationError as error:
            where = ".".join(map(str, error.path))
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {error.message}")
        except validator.SchemaNotFoundError as error:
            problems.append(error.message)
        checked += 1
    assert checked >= 10
    assert not problems, f"Kubernetes {kube_version}:\n" + "\n".join(problems)


# --------------------------------------------------------------- deployment rules


def test_every_deployment_has_probes_and_resources(rendered: Rendered) -> None:
    for deployment in rendered.kind("Deployment"):
        for container in containers(deployment):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            assert container.get("readinessProbe"), f"{where}: no readiness probe"
            assert container.get("livenessProbe"), f"{where}: no liveness probe"
            requests = container.get("resources", {}).get("requests", {})
            limits = container.get("resources", {}).get("limits", {})
            assert {"cpu", "memory"} <= set(requests), f"{where}: requests {requests}"
            assert "memory" in limits, f"{where}: no memory limit"
    for job in rendered.kind("Job"):
        for container in containers(job):
            assert container["resources"]["requests"], job["metadata"]["name"]


def test_the_services_probe_healthz_and_readyz(rendered: Rendered) -> None:
    for component in SERVICES:
        (container,) = containers(rendered.component("Deployment", component))
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_vllm_is_ready_on_health_and_gets_its_gpus(rendered: Rendered) -> None:
    engines = [d for d in rendered.kind("Deployment") if labels(d)[COMPONENT].startswith("vllm-")]
    assert engines
    for engine in engines:
        (container,) = containers(engine)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == "/health", probe
        gpus = container["resources"]["limits"]["nvidia.com/gpu"]
        assert gpus >= 1
        assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus
        args = vllm_args(container)
        assert args["--tensor-parallel-size"] == [str(gpus)]
        assert args["--port"] == [str(container["ports"][0]["containerPort"])]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert {"model-cache", "shm"} <= set(mounts)
        volumes = {v["name"]: v for v in pod_spec(engine)["volumes"]}
        if "adapters" in mounts:
            assert mounts["adapters"]["readOnly"] is True
            assert volumes["adapters"]["persistentVolumeClaim"]["claimName"]
        env = env_of(container)
        assert env["HF_HOME"]["value"].startswith(mounts["model-cache"]["mountPath"])


def test_pods_run_without_privileges(rendered: Rendered) -> None:
    for workload in workloads(rendered):
        name = workload["metadata"]["name"]
        assert pod_spec(workload)["automountServiceAccountToken"] is False, name
        for container in containers(workload):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        if not labels(workload)[COMPONENT].startswith("vllm-"):  # vLLM's image runs as root
            security = pod_spec(workload)["securityContext"]
            assert security["runAsNonRoot"] is True, name
            assert security["runAsUser"] > 0, name


def test_secrets_come_only_from_secret_references(rendered: Rendered) -> None:
    secret_like = 0
    for workload in workloads(rendered):
        for container in containers(workload):
            for name, entry in env_of(container).items():
                if SECRET_NAME.search(name):
                    secret_like += 1
                    assert "value" not in entry, f"{name} is inline"
                    ref = entry["valueFrom"]["secretKeyRef"]
                    assert ref["name"], name
                    assert ref["key"], name
                text = str(entry.get("value", ""))
                assert not re.search(r"://[^/@\s]+:[^/@\s]+@|pk_\w+|hf_\w+", text), name
    assert secret_like >= 10
    for component in ("retriever", "gateway"):
        (container,) = containers(rendered.component("Deployment", component))
        url = env_of(container)[f"{component.upper()}_DATABASE_URL"]
        assert "secretKeyRef" in url["valueFrom"]


def test_images_have_pinned_tags(rendered: Rendered) -> None:
    images = {c["image"] for w in workloads(rendered) for c in containers(w)}
    assert len(images) == 2, images  # the services' image and vLLM's
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name, f"{image}: no tag"
        assert "/" not in tag, f"{image}: no tag"
        assert tag not in ("", "latest"), f"{image}: not pinned"
    assert any(image.startswith("vllm/vllm-openai:") for image in images)


def test_the_autoscaler_scales_vllm_on_waiting_requests() -> None:
    rendered = render("large")
    engines = {
        d["metadata"]["name"]: d
        for d in rendered.kind("Deployment")
        if labels(d)[COMPONENT].startswith("vllm-")
    }
    autoscalers = rendered.kind("HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in autoscalers} == set(engines)
    for hpa in autoscalers:
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert "replicas" not in engines[target["name"]]["spec"], "the HPA owns the replicas"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "Pods"
        assert metric["pods"]["metric"]["name"] == WAITING_METRIC
        assert metric["pods"]["target"]["type"] == "AverageValue"
        assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"] >= 1


def test_the_adapter_rule_is_explained_where_operators_look() -> None:
    rule = [
        'seriesQuery: \'vllm:num_requests_waiting{namespace!="",pod!=""}\'',
        'matches: "^vllm:num_requests_waiting$"',
        f'as: "{WAITING_METRIC}"',
    ]
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    notes = render("large").notes
    for line in rule:
        assert line in notes, f"NOTES.txt lacks: {line}"
        assert line in docs, f"docs/kubernetes.md lacks: {line}"
    assert WAITING_METRIC not in render("default").notes  # no autoscaler, no rule


# ------------------------------------------------------------ the pieces meet


def test_each_service_selects_its_pods_and_port(rendered: Rendered) -> None:
    for service in rendered.kind("Service"):
        assert service["spec"]["type"] == "ClusterIP"
        selector = service["spec"]["selector"]
        matching = [
            d
            for d in rendered.kind("Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, service["metadata"]["name"]
        (deployment,) = matching
        assert deployment["spec"]["selector"]["matchLabels"].items() <= selector.items()
        ports = {p["name"] for c in containers(deployment) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, service["metadata"]["name"]


def test_every_url_points_at_a_service_of_the_release(rendered: Rendered) -> None:
    ports = {
        (s["metadata"]["name"], p["port"])
        for s in rendered.kind("Service")
        for p in s["spec"]["ports"]
    }
    urls = 0
    for workload in workloads(rendered):
        for container in containers(workload):
            for name, entry in env_of(container).items():
                if name.endswith("__BASE_URL"):
                    url = urlsplit(entry["value"])
                    assert (url.hostname, url.port) in ports, f"{name}={entry['value']}"
                    urls += 1
    assert urls >= 6


def test_the_services_run_the_project_commands(rendered: Rendered) -> None:
    from ptychoagent.cli.serve import FACTORIES

    for component in SERVICES:
        (container,) = containers(rendered.component("Deployment", component))
        assert container["command"] == ["ptychoagent", "serve", component]
        assert component in FACTORIES
        port = container["ports"][0]["containerPort"]
        assert container["args"] == ["--host", "0.0.0.0", "--port", str(port)]


FAKE_SECRETS = {
    "api-keys": json.dumps(["k" * 32]),
    "api-key": "k" * 32,
    "url": "postgresql://ptychoagent:password@db.example.org:5432/ptychoagent",
}


def settings_classes() -> dict[str, Any]:
    from gateway.settings import GatewaySettings
    from services.diagnosis.settings import DiagnosisSettings
    from services.ptycho_agent.settings import AgentSettings
    from services.retriever.settings import RetrieverSettings

    return {
        "retriever": RetrieverSettings,
        "diagnosis": DiagnosisSettings,
        "agent": AgentSettings,
        "gateway": GatewaySettings,
    }


def test_the_services_accept_their_environment(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's settings build from the rendered env (Secrets filled with stand-ins)
    in production, and every variable names a real setting."""
    for component, settings_class in settings_classes().items():
        (container,) = containers(rendered.component("Deployment", component))
        prefix = settings_class.model_config["env_prefix"]
        with monkeypatch.context() as patch:
            for name, entry in env_of(container).items():
                assert name.startswith(prefix), f"{component}: {name}"
                field = name.removeprefix(prefix).split("__")[0].lower()
                assert field in settings_class.model_fields, f"{component}: {name}"
                if "value" in entry:
                    patch.setenv(name, entry["value"])
                else:
                    patch.setenv(name, FAKE_SECRETS[entry["valueFrom"]["secretKeyRef"]["key"]])
            settings = settings_class()
        assert settings.environment == "production"


def test_the_engines_serve_the_models_the_services_ask_for(rendered: Rendered) -> None:
    engines = {}
    for deployment in rendered.kind("Deployment"):
        if labels(deployment)[COMPONENT].startswith("vllm-"):
            args = vllm_args(containers(deployment)[0])
            served = args["--served-model-name"] + [
                module.split("=")[0] for module in args.get("--lora-modules", [])
            ]
            engines[deployment["metadata"]["name"]] = (args, served)
    for component, prefix in (("agent", "AGENT"), ("diagnosis", "DIAGNOSIS")):
        env = env_of(containers(rendered.component("Deployment", component))[0])
        if f"{prefix}_BACKEND__BASE_URL" not in env:
            continue
        host = urlsplit(env[f"{prefix}_BACKEND__BASE_URL"]["value"]).hostname
        args, served = engines[str(host)]
        assert env[f"{prefix}_BACKEND__MODEL"]["value"] in served
        if component == "diagnosis":
            images = json.loads(args["--limit-mm-per-prompt"][0])["image"]
            assert images >= int(env["DIAGNOSIS_MAX_K"]["value"]) + 1


@pytest.mark.parametrize(("key", "config"), [("llm", "gpu.yaml"), ("vlm", "gpu-vlm.yaml")])
def test_the_chart_serves_what_the_serve_configurations_say(key: str, config: str) -> None:
    from ptychoagent.engine import load_config

    engine = load_config(ROOT / "deploy" / "vllm" / config)
    model = render("default").values["vllm"]["models"][key]
    assert model["model"] == engine.model
    assert model["servedModelName"] == engine.served_model_name
    assert model["maxModelLen"] == engine.max_model_len
    assert model["maxLoraRank"] == engine.max_lora_rank
    assert model["maxLoras"] == engine.max_loras
    assert model["dtype"] == engine.dtype
    assert model["gpuMemoryUtilization"] == engine.gpu_memory_utilization
    assert (model["limitMmPerPrompt"] or None) == engine.limit_mm_per_prompt


def test_the_service_monitor_scrapes_every_service() -> None:
    rendered = render("large")
    (monitor,) = rendered.kind("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert labels(monitor)["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    selected = [
        s
        for s in rendered.kind("Service")
        if spec["selector"]["matchLabels"].items() <= labels(s).items()
    ]
    assert len(selected) == len(rendered.kind("Service"))
    (endpoint,) = spec["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert re.fullmatch(r"\d+[smh]", endpoint["interval"])
    for service in selected:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert spec["jobLabel"] in labels(service)
    jobs = {labels(s)[spec["jobLabel"]] for s in selected}
    assert {"gateway", "retriever", "agent", "diagnosis"} <= jobs  # as in prometheus.yml


def test_pods_carry_scrape_annotations(rendered: Rendered) -> None:
    for deployment in rendered.kind("Deployment"):
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        port = containers(deployment)[0]["ports"][0]["containerPort"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"


def test_the_ingress_reaches_the_gateway() -> None:
    for site in ("small", "large"):
        rendered = render(site)
        (ingress,) = rendered.kind("Ingress")
        (rule,) = ingress["spec"]["rules"]
        (path,) = rule["http"]["paths"]
        backend = path["backend"]["service"]
        gateway = rendered.component("Service", "gateway")
        assert backend["name"] == gateway["metadata"]["name"]
        assert backend["port"]["name"] in {p["name"] for p in gateway["spec"]["ports"]}
        assert ingress["spec"]["ingressClassName"] == "nginx"
        if site == "large":
            (tls,) = ingress["spec"]["tls"]
            assert tls["hosts"] == [rule["host"]]
            assert tls["secretName"]


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"agent": {"extraEnv": {"AGENT_BACKEND__API_KEY": "x"}}}, "looks like a secret"),
        ({"image": {"tag": "latest"}}, "/image/tag"),
        ({"vllm": {"image": {"tag": "latest"}}}, "/vllm/image/tag"),
        ({"vllm": {"models": {"llm": {"enabled": False}}}}, "agent needs an engine"),
        ({"agent": {"extraEnv": {"AGENT_MAX_K": "3"}, "replicas": 2}}, "replicas"),
    ],
)
def test_the_chart_refuses_bad_values(values: dict[str, Any], message: str) -> None:
    sdk = helm()
    with sdk.Chart.load(CHART) as chart, pytest.raises(sdk.HelmError, match=re.escape(message)):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
