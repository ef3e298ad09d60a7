"""What every service app mounts: the request-id and metrics middleware, problem+json for
every error path, ``/healthz``, ``/readyz`` and ``/metrics``, and API-key auth."""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.errors import (
    PROBLEM_MEDIA_TYPE,
    ServiceError,
    Unauthorized,
    problem,
    problem_for,
)
from services.common.metrics import CONTENT_TYPE, ServiceMetrics
from services.common.openapi import describe_problems, problem_responses
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The current request's id: read by the backend client and the log filter."""

Check = Callable[[], Awaitable[bool]]
PLAIN_TEXT = CONTENT_TYPE.split(";")[0]
"""The media type of ``/metrics`` (Prometheus' text format; the version is a parameter)."""


class RequestContext:
    """Pure ASGI middleware: take or make the request id, time the request, count it by
    route template (not raw path, so ids in paths do not explode the label set)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"").decode()
        request_id = given if _REQUEST_ID_PATTERN.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                template, scope["method"], status, time.perf_counter() - started
            )
            request_id_var.reset(token)


def current_request_id(request: Request) -> str | None:
    """The request's id, also after the middleware has returned (crash handler)."""
    state = request.scope.get("state") or {}
    return request_id_var.get() or state.get("request_id")


def _problem_response(body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(
        body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """problem+json for our errors, validation errors, HTTP errors and crashes."""

    async def service_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ServiceError)
        if error.http_status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, error.detail)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
        return _problem_response(problem_for(error, request_id_var.get()), headers)

    async def validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = [
            {
                "loc": [str(part) for part in item.get("loc", ())],
                "msg": item.get("msg", ""),
                "type": item.get("type", ""),
            }
            for item in error.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        body = problem(
            422, "Invalid input", detail, request_id_var.get(), "invalid-input", errors=errors
        )
        return _problem_response(body)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "Error")
        body = problem(error.status_code, title, str(error.detail), request_id_var.get(), slug)
        return _problem_response(body, getattr(error, "headers", None))

    async def crash(request: Request, error: Exception) -> Response:
        if _database_outage(error):
            log.warning(
                "%s %s: the database does not answer: %s", request.method, request.url.path, error
            )
            body = problem(
                503,
                "Database unavailable",
                "the database does not answer; try again shortly",
                current_request_id(request),
                "database-unavailable",
            )
            return _problem_response(body, {"Retry-After": "5"})
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        body = problem(
            500,
            "Internal error",
            "an unexpected error occurred; the request id says which",
            current_request_id(request),
            "internal",
        )
        return _problem_response(body)

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, crash)


def _database_outage(error: Exception) -> bool:
    """Whether an error is the database being unreachable (a restart, a closed pool),
    which is worth a 503 and a retry, not a 500."""
    if not type(error).__module__.startswith("sqlalchemy"):
        return False
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(error, OperationalError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def operations_router(metrics: ServiceMetrics, checks: Mapping[str, Check]) -> APIRouter:
    """``/healthz`` (the process answers), ``/readyz`` (every check passes: backend,
    database, …; 503 naming the failing ones otherwise) and ``/metrics``."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", responses=problem_responses(503))
    async def readyz() -> Response:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = bool(await check())
            except Exception:  # a failing check is "not ready", never a crash
                log.exception("readiness check %s failed", name)
                results[name] = False
        failing = [name for name, ok in results.items() if not ok]
        if failing:
            body = problem(
                503,
                "Not ready",
                f"not ready: {', '.join(failing)} did not answer",
                request_id_var.get(),
                "not-ready",
                checks=results,
            )
            return _problem_response(body)
        return JSONResponse({"status": "ready", "checks": results})

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {PLAIN_TEXT: {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return router


_BEARER = HTTPBearer(auto_error=False, description="One of the service's `api_keys`.")
_HEADER = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="The same key, for clients that cannot set Authorization.",
)


def api_key_guard(settings: ServiceSettings) -> Callable[..., Awaitable[None]]:
    """A dependency that admits a request carrying one of ``settings.api_keys`` (as
    ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``); open when none is configured.
    With keys, the OpenAPI document shows both as security schemes."""
    keys = [key.get_secret_value().encode() for key in settings.api_keys]

    async def open_guard() -> None:
        return None

    async def guard(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
        header: Annotated[str | None, Depends(_HEADER)],
    ) -> None:
        given = (bearer.credentials.strip() if bearer is not None else "") or header or ""
        if not given:
            raise Unauthorized("this service needs an API key (Authorization: Bearer KEY)")
        if not any(hmac.compare_digest(given.encode(), key) for key in keys):
            raise Unauthorized("the API key is not valid for this service")

    return guard if keys else open_guard


def configure_logging(log_format: str) -> None:
    """Set the log format once (called by ``create_app`` and the CLI)."""
    if log_format == "json":
        fmt = (
            '{"time": "%(asctime)s", "level": "%(levelname)s", "logger": "%(name)s", '
            '"request_id": "%(request_id)s", "message": "%(message)s"}'
        )
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger("services")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


def service_app(
    title: str,
    settings: ServiceSettings,
    metrics: ServiceMetrics,
    router: APIRouter,
    service: object,
    checks: Mapping[str, Check],
    *,
    startup: Sequence[Callable[[], Awaitable[None]]] = (),
    shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    guarded: bool = True,
) -> FastAPI:
    """A service's app, assembled the one way: logging, problem+json handlers, the
    operations routes, ``router`` behind the API-key guard (unless ``guarded`` is false:
    the router authenticates its routes itself), the request-id middleware; ``startup``
    runs before the first request, ``shutdown`` after the last."""
    configure_logging(settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for step in startup:
            await step()
        yield
        for step in shutdown:
            await step()

    app = FastAPI(title=title, version="1", lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app)
    describe_problems(app)
    app.include_router(operations_router(metrics, checks))
    guard = [Depends(api_key_guard(settings))] if guarded else []
    app.include_router(router, dependencies=guard)
    app.add_middleware(RequestContext, metrics=metrics)
    return app
