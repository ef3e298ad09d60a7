"""One exception tree for every service, and one error body: RFC 9457 problem+json.

::

    ServiceError                    500  something we did not expect
    ├── InvalidInput                422  the request is well-formed JSON but wrong
    │   └── UnparseableAnswer       422  the model's answer maps to no label
    ├── BadRequest                  400  not JSON, wrong content type for the body, …
    ├── Unauthorized                401  no API key, or an unknown one
    ├── Forbidden                   403  a known key without the scope
    ├── NotFound                    404  an unknown prediction, adapter, example, …
    ├── PayloadTooLarge             413  an image over the byte or pixel limit
    ├── UnsupportedMediaType        415  an image format we do not read
    └── BackendError                502  a backend (model, retriever) answered, not usefully
        ├── BackendRejected         4xx  it refused the request (unknown adapter → 404)
        └── BackendUnavailable      503  down after retries, or the circuit is open

Routes raise; they never return error values. Backend (httpx) exceptions are translated
into this tree in ``services.common.upstream`` and nowhere else.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ptychowire.problem import PROBLEM_TYPE_BASE


class ServiceError(Exception):
    """Base of every error a service reports; ``status`` and ``title`` go in the body."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal"

    def __init__(self, detail: str, *, status: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        if status is not None:
            self.status_override = status

    @property
    def http_status(self) -> int:
        return int(getattr(self, "status_override", self.status))


class InvalidInput(ServiceError):
    status, title, slug = 422, "Invalid input", "invalid-input"


class UnparseableAnswer(InvalidInput):
    title, slug = "Unparseable model answer", "unparseable-answer"


class BadRequest(ServiceError):
    status, title, slug = 400, "Bad request", "bad-request"


class Unauthorized(ServiceError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(ServiceError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(ServiceError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(ServiceError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(ServiceError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(ServiceError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class BackendError(ServiceError):
    status, title, slug = 502, "Backend error", "backend-error"


class BackendRejected(BackendError):
    title, slug = "Backend refused the request", "backend-rejected"


class BackendUnavailable(BackendError):
    status, title, slug = 503, "Backend unavailable", "backend-unavailable"


def problem(
    status: int,
    title: str,
    detail: str,
    instance: str | None,
    slug: str,
    **extra: Any,
) -> dict[str, Any]:
    """The problem+json body (``instance`` is the request id)."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_for(error: ServiceError, instance: str | None) -> dict[str, Any]:
    return problem(
        error.http_status, error.title, error.detail, instance, error.slug, **error.extra
    )
