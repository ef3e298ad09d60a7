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

from ptychowire.problem import PROBLEM_MEDIA_TYPE
from services.common.bodies import Admit, BodyGuard
from services.common.errors import (
    BadRequest,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
    problem,
    problem_for,
)
from services.common.info import info_router
from services.common.metrics import CONTENT_TYPE, ServiceMetrics
from services.common.openapi import describe_problems, problem_responses
from services.common.settings import BackendSettings, ServiceSettings

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The current request's id: read by the backend client and the log filter."""

Check = Callable[[], Awaitable[bool]]
PLAIN_TEXT = CONTENT_TYPE.split(";")[0]
"""The media type of ``/metrics`` (Prometheus' text format; the version is a parameter)."""


class RequestContext:
    """Pure ASGI middleware around every request: take or make the request id, time the
    request, count it by route template (not raw path, so ids in paths do not explode the
    label set), and answer an exception no handler took with problem+json (500, or 503
    for a database outage).

    That last is here, not in an exception handler for ``Exception``: Starlette runs such
    a handler in its outermost middleware, which sends the response and then re-raises,
    and uvicorn closes a connection whose app raised, so the client's next request on
    the kept-alive connection read nothing. Answered here, the error ends with its
    request; only a response already begun is left to fail (it cannot be completed)."""

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
        status: int | None = None
        complete = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            elif message["type"] == "http.response.body":
                complete = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            if status is None:
                answer = _crash_response(error, scope["method"], scope["path"], request_id)
                await answer(scope, receive, send_with_id)
            elif complete:  # e.g. a background task: the answer stands
                log.exception("error after the response to %s %s", scope["method"], scope["path"])
            else:
                raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                template, scope["method"], status or 500, time.perf_counter() - started
            )
            request_id_var.reset(token)


def _crash_response(error: Exception, method: str, path: str, request_id: str | None) -> Response:
    """The answer to an exception nothing else handled: 503 when the database does not
    answer (worth a retry), else 500; logged either way."""
    if _database_outage(error):
        log.warning("%s %s: the database does not answer: %s", method, path, error)
        body = problem(
            503,
            "Database unavailable",
            "the database does not answer; try again shortly",
            request_id,
            "database-unavailable",
        )
        return _problem_response(body, {"Retry-After": "5"})
    log.error("unhandled error in %s %s", method, path, exc_info=error)
    body = problem(
        500,
        "Internal error",
        "an unexpected error occurred; the request id says which",
        request_id,
        "internal",
    )
    return _problem_response(body)


def get_service(request: Request) -> Any:
    """The app's service (``service_app`` keeps it on ``app.state``); each service's
    ``api.py`` says its type: ``ServiceDep = Annotated[<Its>Service, Depends(get_service)]``."""
    return request.app.state.service


def current_request_id(request: Request) -> str | None:
    """The request's id, also after the middleware has returned (crash handler)."""
    state = request.scope.get("state") or {}
    return request_id_var.get() or state.get("request_id")


def _problem_response(body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(
        body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def error_response(error: ServiceError) -> Response:
    """The problem+json answer to one of our errors (a 401 with its Bearer challenge)."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
    return _problem_response(problem_for(error, request_id_var.get()), headers)


_TREE: dict[int, type[ServiceError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        PayloadTooLarge,
        UnsupportedMediaType,
    )
}
"""Title and type of an HTTP error by status, from the error tree."""


def install_error_handlers(app: FastAPI) -> None:
    """problem+json for our errors, validation errors, HTTP errors and crashes."""

    async def service_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ServiceError)
        if error.http_status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, error.detail)
        return error_response(error)

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
        known = _TREE.get(error.status_code)
        slug, title = (known.slug, known.title) if known else ("http-error", "Error")
        if error.status_code == 405:
            slug, title = "method-not-allowed", "Method not allowed"
        body = problem(error.status_code, title, str(error.detail), request_id_var.get(), slug)
        return _problem_response(body, getattr(error, "headers", None))

    async def crash(request: Request, error: Exception) -> Response:
        # reached only by an app without RequestContext (which answers crashes itself)
        return _crash_response(error, request.method, request.url.path, current_request_id(request))

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


def operations_router(
    metrics: ServiceMetrics, checks: Mapping[str, Check], instance_id: str | None = None
) -> APIRouter:
    """``/healthz`` (the process answers, with its ``instance_id`` when it has one),
    ``/readyz`` (every check passes: backend, database, …; 503 naming the failing ones
    otherwise) and ``/metrics``."""
    router = APIRouter(tags=["operations"])
    health = {"status": "ok"} | ({"instance": instance_id} if instance_id else {})

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return health

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


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key a request presents: ``Authorization: Bearer KEY``, else ``X-API-Key``."""
    header = headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    return given or headers.get("x-api-key") or None


def _admit(keys: Sequence[bytes], given: str | None) -> None:
    """Refuse ``given`` unless it is one of ``keys`` (compared in constant time)."""
    if not given:
        raise Unauthorized("this service needs an API key (Authorization: Bearer KEY)")
    if not any(hmac.compare_digest(given.encode(), key) for key in keys):
        raise Unauthorized("the API key is not valid for this service")


def api_key_check(settings: ServiceSettings) -> Admit:
    """``check(headers, path)``: refuses a request without one of ``settings.api_keys``;
    open when none is configured (the body guard's check, before a body is read)."""
    keys = [key.get_secret_value().encode() for key in settings.api_keys]

    async def check(headers: Mapping[str, str], path: str) -> None:
        if keys:
            _admit(keys, presented_key(headers))

    return check


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
        _admit(keys, (bearer.credentials.strip() if bearer is not None else "") or header)

    return guard if keys else open_guard


async def one_value_per_query_parameter(request: Request) -> None:
    """Refuse a query parameter given twice: every one of ours takes one value, and
    silently using the last would answer a question the caller did not ask."""
    names = [name for name, _ in request.query_params.multi_items()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInput(f"query parameter(s) given more than once: {', '.join(repeated)}")


LOGGED_PACKAGES = ("services", "gateway", "ptychobench", "training", "ptychoagent")
"""The project's packages: each one's loggers write through the one handler below, with
the request id, in the configured format."""


def configure_logging(log_format: str) -> None:
    """Set the log format once, for every package of the project (called by
    ``create_app`` and the CLI)."""
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
    for package in LOGGED_PACKAGES:
        logger = logging.getLogger(package)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)


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
    admit: Admit | None = None,
    body_limits: Mapping[str, int] | None = None,
) -> FastAPI:
    """A service's app, assembled the one way: logging, problem+json handlers, the
    operations routes, ``router`` behind the API-key guard (unless ``guarded`` is false:
    the router authenticates its routes itself, and ``admit`` checks the key of a request
    with a body before it is read), the body guard (``settings.max_body_bytes``, or
    ``body_limits[path]``), the request-id middleware; ``startup`` runs before the first
    request, ``shutdown`` after the last."""
    configure_logging(settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for step in startup:
            await step()
        yield
        for step in shutdown:
            await step()

    app = FastAPI(
        title=title,
        version="1",
        lifespan=lifespan,
        dependencies=[Depends(one_value_per_query_parameter)],
    )
    app.state.service = service
    install_error_handlers(app)
    describe_problems(app)
    app.include_router(operations_router(metrics, checks, settings.instance_id))
    guard = [Depends(api_key_guard(settings))] if guarded else []
    app.include_router(router, dependencies=guard)
    if isinstance(backend := getattr(settings, "backend", None), BackendSettings):
        app.include_router(info_router(title, backend), dependencies=guard)
    app.add_middleware(
        BodyGuard,
        limit=settings.max_body_bytes,
        limits=body_limits or {},
        admit=api_key_check(settings) if guarded else admit,
        refuse=error_response,
    )
    app.add_middleware(RequestContext, metrics=metrics)
    return app
