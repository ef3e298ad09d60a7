"""API-key auth for the gateway's routes: who may do what (:data:`ACCESS`, the one rule
the API under ``/v1`` and the review page under ``/ui`` both follow), and one FastAPI
dependency per action (in ``gateway.deps``).

The token comes as ``Authorization: Bearer pk_<id>_<secret>`` or ``X-API-Key``; both
show in the OpenAPI document as security schemes. Failures are raised as
``Unauthorized`` (401, with ``WWW-Authenticate: Bearer`` from
``services.common.web.install_error_handlers``) or ``Forbidden`` (403).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import Depends
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gateway.keys import SCOPES, TOKEN_FORMAT, ApiKey, KeyStore
from services.common.database import retrying
from services.common.errors import Forbidden

BEARER = HTTPBearer(
    auto_error=False,
    bearerFormat=TOKEN_FORMAT,
    description="A gateway API key, made with `ptychoagent keys create`.",
)
HEADER = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="The same API key, for clients that cannot set Authorization.",
)


Action = Literal["predict", "review", "read", "benchmarks", "run benchmarks"]
ACCESS: dict[Action, tuple[str, ...]] = {
    "predict": ("predict",),  # diagnose, recommend, analyze
    "review": ("feedback",),  # an expert's true labels
    "read": ("predict", "feedback"),  # predictions, their images, live F1
    "benchmarks": ("predict", "feedback", "admin"),  # benchmark runs and their reports
    "run benchmarks": ("admin",),
}
"""Which scopes admit each action, under ``/v1`` and ``/ui`` alike. Predictions and live
F1 are read by the keys that make or review them; ``admin`` (adapters, benchmarks)
implies neither, as no scope implies another (``gateway.keys``)."""


def admits(key: ApiKey, action: Action) -> bool:
    return any(scope in key.scopes for scope in ACCESS[action])


def require(key: ApiKey, action: Action) -> None:
    """``Forbidden`` unless one of the key's scopes admits ``action``."""
    if not admits(key, action):
        needed = " or ".join(repr(scope) for scope in ACCESS[action])
        raise Forbidden(
            f"API key {key.name!r} lacks the {needed} scope to {action} "
            f"(it has: {', '.join(key.scopes) or 'none'})",
            required_scope=ACCESS[action][0],
            key_scopes=list(key.scopes),
        )


def require_scope(
    store: KeyStore, scope: str, *alternatives: str
) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits a request whose API key is active and has ``scope`` (or
    one of ``alternatives``), and gives the route that key. ``Authorization: Bearer``
    wins over ``X-API-Key``."""
    for name in (scope, *alternatives):
        if name not in SCOPES:
            raise ValueError(f"unknown scope {name!r}; allowed: {', '.join(SCOPES)}")

    async def api_key(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        header: Annotated[str | None, Depends(HEADER)],
    ) -> ApiKey:
        key = await authenticate(store, presented_token(bearer, header))
        if not any(name in key.scopes for name in alternatives):
            store.require(key, scope)
        return key

    return api_key


async def authenticate(keys: KeyStore, token: str | None) -> ApiKey:
    """The active key of ``token`` (``Unauthorized`` otherwise); retried like every
    write: a dropped connection (a database restart) is not a 503."""
    return await asyncio.to_thread(retrying, lambda: keys.authenticate(token), 5, time.sleep)


def presented_token(bearer: HTTPAuthorizationCredentials | None, header: str | None) -> str | None:
    """The request's token: ``Authorization: Bearer`` wins over ``X-API-Key``."""
    return bearer.credentials if bearer is not None else header
