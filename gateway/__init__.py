"""The gateway: the beamline's one entry point (diagnose, recommend, analyze, feedback,
live F1) and the PtychoBench benchmark runner against the live services.

``create_app`` is the ASGI app factory (``ptychoagent serve gateway``). The request and
response models are the wire contract's (:mod:`ptychowire.gateway`); a beamline's Python
client is :mod:`ptychoagent.client`, which imports nothing of this package. The rooms
(predictions, history, idempotency, feedback, pool) are listed in docs/architecture.md.
Exports load on first use, so importing a submodule does not load FastAPI.
"""

from __future__ import annotations

from services.common.exports import lazy_exports

_EXPORTS = {
    "ApiKey": "gateway.keys",
    "BenchConfig": "gateway.bench.config",
    "GatewayMetrics": "gateway.metrics",
    "GatewayService": "gateway.service",
    "GatewaySettings": "gateway.settings",
    "KeyStore": "gateway.keys",
    "PredictionStore": "gateway.store",
    "RunStore": "gateway.bench.store",
    "create_app": "gateway.app",
    "load_config": "gateway.bench.config",
    "run_benchmark": "gateway.bench.runner",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
