"""What every service shares: settings, the one backend client, errors (problem+json),
metrics, the request-id middleware, health/readiness and API-key auth."""

from __future__ import annotations

from services.common.exports import lazy_exports

_EXPORTS = {
    "BackendClient": "services.common.backend",
    "BackendError": "services.common.errors",
    "BackendRejected": "services.common.errors",
    "BackendSettings": "services.common.settings",
    "BackendUnavailable": "services.common.errors",
    "BadRequest": "services.common.errors",
    "CircuitBreaker": "services.common.upstream",
    "Completion": "services.common.backend",
    "Forbidden": "services.common.errors",
    "InvalidInput": "services.common.errors",
    "NotFound": "services.common.errors",
    "PayloadTooLarge": "services.common.errors",
    "RequestContext": "services.common.web",
    "ServiceError": "services.common.errors",
    "ServiceMetrics": "services.common.metrics",
    "ServiceSettings": "services.common.settings",
    "Unauthorized": "services.common.errors",
    "UnparseableAnswer": "services.common.errors",
    "UnsupportedMediaType": "services.common.errors",
    "Upstream": "services.common.upstream",
    "UpstreamSettings": "services.common.settings",
    "api_key_guard": "services.common.web",
    "configure_logging": "services.common.web",
    "install_error_handlers": "services.common.web",
    "operations_router": "services.common.web",
    "request_id_var": "services.common.web",
    "retryable": "services.common.upstream",
}
"""Exported name → its module, imported on first use: a client that needs only
``services.common.settings`` does not load FastAPI."""


__all__ = [
    "BackendClient",
    "BackendError",
    "BackendRejected",
    "BackendSettings",
    "BackendUnavailable",
    "BadRequest",
    "CircuitBreaker",
    "Completion",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "RequestContext",
    "ServiceError",
    "ServiceMetrics",
    "ServiceSettings",
    "Unauthorized",
    "UnparseableAnswer",
    "UnsupportedMediaType",
    "Upstream",
    "UpstreamSettings",
    "api_key_guard",
    "configure_logging",
    "install_error_handlers",
    "operations_router",
    "request_id_var",
    "retryable",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
