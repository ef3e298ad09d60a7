"""deploy/prometheus: promtool accepts the config and the rules, the rules' unit tests
pass, and the metrics the rules read are the ones the gateway exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics, outcomes

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted(PROMETHEUS.glob("rules/*.yml"))
RULE_TESTS = sorted(PROMETHEUS.glob("tests/*.test.yml"))


def promtool(*args: str) -> None:
    """Run promtool from the repository root; fail with its output unless it exits 0."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `make tools`", pytrace=False)
    result = subprocess.run(
        [path, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"promtool {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )


def rule_expressions() -> list[str]:
    exprs = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            exprs += [str(rule["expr"]) for rule in group["rules"]]
    return exprs


def recorded_names() -> set[str]:
    names = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def test_the_files_are_where_the_config_looks() -> None:
    assert (PROMETHEUS / "prometheus.yml").is_file()
    assert [path.name for path in RULE_FILES] == ["live_f1.yml"]
    assert [path.name for path in RULE_TESTS] == ["live_f1.test.yml"]


def test_promtool_accepts_the_config() -> None:
    promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))


def test_promtool_accepts_the_rules() -> None:
    assert RULE_FILES
    promtool("check", "rules", *map(str, RULE_FILES))


def test_the_rules_unit_tests_pass() -> None:
    promtool("test", "rules", str(PROMETHEUS / "tests" / "live_f1.test.yml"))


def test_the_rules_read_only_metrics_the_gateway_exports() -> None:
    metrics = GatewayMetrics()
    found = outcomes(["Grid artifacts", "Blurring"], ["Grid artifacts", "Phase ramp"], "detection")
    assert all(found.values())  # one tp, one fp and one fn
    metrics.count_outcomes(found, task="detection", adapter="base", strategy="ssfs", k=4)
    samples = [
        sample
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    ]
    exported = {sample.name for sample in samples}
    read = {name for expr in rule_expressions() for name in re.findall(r"\bptycho_\w+", expr)}
    assert read == {
        "ptycho_gateway_label_outcomes_total",
        "ptycho_gateway_label_outcome_retractions_total",
    }
    assert read <= exported, f"not exported by the gateway: {sorted(read - exported)}"
    # the labels the rules aggregate by, on both counters
    labels = {frozenset(sample.labels) for sample in samples if sample.name in read}
    assert labels == {frozenset({"task", "adapter", "strategy", "k", "label", "outcome"})}


def test_every_recorded_series_a_rule_reads_is_recorded() -> None:
    read = {name for expr in rule_expressions() for name in re.findall(r"\bptycho:[\w:]+", expr)}
    recorded = recorded_names()
    assert "ptycho:label_outcomes:net" in read
    assert read <= recorded, f"read but recorded by no rule: {sorted(read - recorded)}"
    assert {
        "ptycho:live_micro_f1",
        "ptycho:live_class_f1",
        "ptycho:live_micro_f1:1h",
        "ptycho:live_micro_f1:1d",
        "ptycho:live_micro_f1:7d",
    } <= recorded
