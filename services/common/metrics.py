"""Prometheus metrics of one service, in its own registry (apps built in one process,
as in tests, do not collide).

Names follow ``ptycho_<service>_<noun>_<unit>``. Label values that dashboards group by
are created up front, so a panel shows zeros before the first request.

Every label set is bounded, whatever callers send: routes are templates (``unmatched``
for no route), methods are the HTTP methods the services use or ``other``, and model
names (a caller may name any adapter) are the first :data:`MAX_MODEL_LABELS` seen, then
``other``. ``/metrics`` is open; an unbounded label would let anyone grow it.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.common.upstream import DEFAULT_CIRCUIT, CircuitState

__all__ = ["CONTENT_TYPE", "BoundedLabel", "ServiceMetrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
CIRCUIT_STATES: tuple[CircuitState, ...] = ("closed", "open", "half_open")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_MODEL_LABELS = 32
OTHER = "other"


class BoundedLabel:
    """The values one label may take: ``known``, then the first ``spare`` others seen,
    then :data:`OTHER` for the rest."""

    def __init__(self, known: Iterable[str] = (), spare: int = 0) -> None:
        self._values = set(known)
        self._spare = spare

    def __call__(self, value: str) -> str:
        if value in self._values:
            return value
        if self._spare > 0:
            self._spare -= 1
            self._values.add(value)
            return value
        return OTHER


class ServiceMetrics:
    """Requests, latency, backend calls, retries, parse failures and circuit state."""

    def __init__(self, service: str, tasks: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        prefix = f"ptycho_{service}"
        self.requests = Counter(
            f"{prefix}_requests",
            "HTTP requests by route, method and status code.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{prefix}_request_latency_seconds",
            "HTTP request latency by route.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.backend_latency = Histogram(
            f"{prefix}_backend_latency_seconds",
            "Model backend call latency by model/adapter and outcome.",
            ("model", "outcome"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retries = Counter(
            f"{prefix}_backend_retries",
            "Backend calls repeated after a retryable failure.",
            ("model",),
            registry=self.registry,
        )
        self.parse_failures = Counter(
            f"{prefix}_parse_failures",
            "Model answers with fragments that map to no label.",
            ("task",),
            registry=self.registry,
        )
        self.circuit = Gauge(
            f"{prefix}_backend_circuit_state",
            "1 for the backend circuit's current state, 0 for the others.",
            ("state",),
            registry=self.registry,
        )
        for task in tasks:
            self.parse_failures.labels(task=task)
        self.circuit_state("closed")
        self._method = BoundedLabel(HTTP_METHODS)
        self._model = BoundedLabel(spare=MAX_MODEL_LABELS)

    # BackendObserver
    def backend_call(self, model: str, seconds: float, outcome: str) -> None:
        self.backend_latency.labels(model=self._model(model), outcome=outcome).observe(seconds)

    def backend_retry(self, model: str) -> None:
        self.retries.labels(model=self._model(model)).inc()

    def circuit_state(self, state: CircuitState, circuit: str = DEFAULT_CIRCUIT) -> None:
        """The state of the service's one backend circuit (its client names no other)."""
        for name in CIRCUIT_STATES:
            self.circuit.labels(state=name).set(1 if name == state else 0)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, method=self._method(method), status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
