"""What every service shares: settings, the one backend client, errors (problem+json),
metrics, the request-id middleware, health/readiness and API-key auth."""

from services.common.backend import BackendClient, Completion
from services.common.errors import (
    BackendError,
    BackendRejected,
    BackendUnavailable,
    BadRequest,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    UnparseableAnswer,
    UnsupportedMediaType,
)
from services.common.metrics import ServiceMetrics
from services.common.settings import BackendSettings, ServiceSettings, UpstreamSettings
from services.common.upstream import CircuitBreaker, Upstream, retryable
from services.common.web import (
    RequestContext,
    api_key_guard,
    configure_logging,
    install_error_handlers,
    operations_router,
    request_id_var,
)

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
