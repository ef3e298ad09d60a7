"""A service's metrics: label sets a caller cannot grow without bound."""

from __future__ import annotations

from services.common.metrics import MAX_MODEL_LABELS, BoundedLabel, ServiceMetrics


def test_a_bounded_label_keeps_the_known_values_then_the_first_new_ones_then_other() -> None:
    label = BoundedLabel(("GET", "POST"), spare=2)
    assert [label(v) for v in ("GET", "a", "POST", "b", "c", "a", "d")] == [
        "GET",
        "a",
        "POST",
        "b",
        "other",
        "a",
        "other",
    ]


def test_models_named_by_callers_do_not_grow_the_backend_series_without_bound() -> None:
    metrics = ServiceMetrics("demo")
    for n in range(MAX_MODEL_LABELS + 500):
        metrics.backend_call(f"adapter-{n}", 0.1, "rejected")
        metrics.backend_retry(f"adapter-{n}")
    models = {
        sample.labels["model"]
        for family in metrics.registry.collect()
        if family.name in ("ptycho_demo_backend_latency_seconds", "ptycho_demo_backend_retries")
        for sample in family.samples
    }
    assert len(models) == MAX_MODEL_LABELS + 1
    assert "other" in models
    value = metrics.registry.get_sample_value
    assert value("ptycho_demo_backend_retries_total", {"model": "other"}) == 500
