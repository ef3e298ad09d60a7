"""The gateway's Prometheus metrics: the service basics, the upstream services, and the
live-F1 counters that expert feedback drives.

Live F1 is counted per class: each reviewed prediction adds, for every label of its
task's vocabulary that the prediction or the truth holds, one true positive, false
positive or false negative to ``ptycho_gateway_label_outcomes_total{task, adapter,
strategy, k, label, outcome}``. When an expert reviews a prediction again, the latest
review counts: the earlier review's outcomes are added to
``ptycho_gateway_label_outcome_retractions_total`` (same labels), and the recording rules
in ``deploy/prometheus/rules`` subtract them. The two series of a label set are always
created together, so the subtraction never misses a side.

Counters start at zero with the process, as Prometheus counters do; ``increase()`` over
a window is right across restarts and replicas. The all-time figures come from the
database (``GET /v1/live-f1``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from ptychobench.labels import vocabulary
from services.common.metrics import CIRCUIT_STATES, ServiceMetrics
from services.common.upstream import DEFAULT_CIRCUIT, CircuitState

OUTCOMES = ("tp", "fp", "fn")


def outcomes(predicted: Iterable[str], truth: Iterable[str], task: str) -> dict[str, list[str]]:
    """Which labels were true positives, false positives and false negatives, in the
    vocabulary's order."""
    said, true = set(predicted), set(truth)
    vocab = vocabulary(task)
    return {
        "tp": [label for label in vocab if label in said and label in true],
        "fp": [label for label in vocab if label in said and label not in true],
        "fn": [label for label in vocab if label not in said and label in true],
    }


class GatewayMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("gateway", tasks=["detection", "recommendation"])
        self.predictions = Counter(
            "ptycho_gateway_predictions",
            "Predictions stored, by task, kind (diagnose, recommend, analyze) and adapter.",
            ("task", "kind", "adapter"),
            registry=self.registry,
        )
        self.feedback = Counter(
            "ptycho_gateway_feedback",
            "Expert reviews received, by task; replaced: whether one superseded another.",
            ("task", "replaced"),
            registry=self.registry,
        )
        labels = ("task", "adapter", "strategy", "k", "label", "outcome")
        self.label_outcomes = Counter(
            "ptycho_gateway_label_outcomes",
            "Per-class outcomes (tp, fp, fn) of reviewed predictions.",
            labels,
            registry=self.registry,
        )
        self.label_retractions = Counter(
            "ptycho_gateway_label_outcome_retractions",
            "Outcomes of reviews that a later review of the same prediction replaced.",
            labels,
            registry=self.registry,
        )
        self.benchmark_items = Gauge(
            "ptycho_gateway_benchmark_items",
            "Items of benchmark runs started on this gateway, by run and state "
            "(total, done, failed).",
            ("run", "name", "state"),
            registry=self.registry,
        )
        self.upstream_circuit = Gauge(
            "ptycho_gateway_upstream_circuit_state",
            "1 for each upstream service's current circuit state, 0 for the others.",
            ("upstream", "state"),
            registry=self.registry,
        )
        self.refine_rounds = Counter(
            "ptycho_gateway_refine_rounds",
            "Closed-loop rounds, by the recommending adapter and outcome (accepted, "
            "rejected, unchanged); acceptance rate = accepted / (accepted + rejected).",
            ("adapter", "outcome"),
            registry=self.registry,
        )
        self.refine_loss_change = Histogram(
            "ptycho_gateway_refine_loss_change_ratio",
            "Relative change of the final data-fit loss per judged round (negative: better).",
            ("adapter", "outcome"),
            buckets=(-0.5, -0.2, -0.1, -0.05, -0.02, 0.0, 0.02, 0.05, 0.1, 0.2, 0.5),
            registry=self.registry,
        )
        self.refine_metric_gain = Histogram(
            "ptycho_gateway_refine_metric_gain_ratio",
            "Mean relative gain of the targeted artifacts' metrics per judged round "
            "(positive: better).",
            ("adapter", "outcome"),
            buckets=(-0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0),
            registry=self.registry,
        )
        self.refine_jobs = Counter(
            "ptycho_gateway_refine_jobs",
            "Refinement jobs entering each state (queued counts submissions and resumes).",
            ("state",),
            registry=self.registry,
        )
        self.refine_reviews = Counter(
            "ptycho_gateway_refine_reviews",
            "Expert reviews of closed-loop rounds, by adapter, the loop's outcome and the "
            "expert's verdict (confirm, reject).",
            ("adapter", "outcome", "verdict"),
            registry=self.registry,
        )
        for state in ("queued", "running", "done", "failed", "cancelled", "interrupted"):
            self.refine_jobs.labels(state=state)
        self._prepared: set[tuple[str, str, str, str]] = set()
        for task in ("detection", "recommendation"):
            for replaced in ("false", "true"):
                self.feedback.labels(task=task, replaced=replaced)

    def prepare_outcomes(self, task: str, adapter: str, strategy: str, k: int) -> None:
        """Create a configuration's outcome and retraction series at 0 for every label,
        when its first prediction is stored: Prometheus then sees each series rise from
        0, and ``increase()`` over a window counts its first review too."""
        key = (task, adapter, strategy, str(k))
        if key in self._prepared:
            return
        self._prepared.add(key)
        for label in vocabulary(task):
            for outcome in OUTCOMES:
                self._series(task, adapter, strategy, k, label, outcome)

    def count_outcomes(
        self,
        found: dict[str, list[str]],
        *,
        task: str,
        adapter: str,
        strategy: str,
        k: int,
        retract: bool = False,
    ) -> None:
        for outcome, labels in found.items():
            for label in labels:
                added, retracted = self._series(task, adapter, strategy, k, label, outcome)
                (retracted if retract else added).inc()

    def _series(
        self, task: str, adapter: str, strategy: str, k: int, label: str, outcome: str
    ) -> tuple[Any, Any]:
        """A label set's outcome and retraction counters, always made together."""
        names = {
            "task": task,
            "adapter": adapter,
            "strategy": strategy,
            "k": str(k),
            "label": label,
            "outcome": outcome,
        }
        return self.label_outcomes.labels(**names), self.label_retractions.labels(**names)

    def prepare_refine(self, adapter: str) -> None:
        """An adapter's round series at 0, before its first round is counted."""
        for outcome in ("accepted", "rejected", "unchanged"):
            self.refine_rounds.labels(adapter=adapter, outcome=outcome)
            for verdict in ("confirm", "reject"):
                self.refine_reviews.labels(adapter=adapter, outcome=outcome, verdict=verdict)

    def upstream_observer(self, name: str) -> UpstreamObserver:
        return UpstreamObserver(self, name)


class UpstreamObserver:
    """What the gateway's client of one service reports: call latency and retries under
    the service's name, and the state of each of its circuits (``upstream`` is the
    service's name, ``diagnosis:vlm`` for the circuit of one backend behind it)."""

    def __init__(self, metrics: GatewayMetrics, name: str) -> None:
        self.metrics = metrics
        self.name = name
        self.circuit_state("closed")

    def backend_call(self, model: str, seconds: float, outcome: str) -> None:
        self.metrics.backend_call(self.name, seconds, outcome)

    def backend_retry(self, model: str) -> None:
        self.metrics.backend_retry(self.name)

    def circuit_state(self, state: CircuitState, circuit: str = DEFAULT_CIRCUIT) -> None:
        upstream = self.name if circuit == DEFAULT_CIRCUIT else f"{self.name}:{circuit}"
        for name in CIRCUIT_STATES:
            self.metrics.upstream_circuit.labels(upstream=upstream, state=name).set(
                1 if name == state else 0
            )
