"""API-key auth for the gateway's routes: one FastAPI dependency per scope.

::

    PredictKey = Annotated[ApiKey, Depends(require_scope(store, "predict"))]

The token comes as ``Authorization: Bearer pk_<id>_<secret>`` or ``X-API-Key``; both
show in the OpenAPI document as security schemes. Failures are raised as
``Unauthorized`` (401, with ``WWW-Authenticate: Bearer`` from
``services.common.web.install_error_handlers``) or ``Forbidden`` (403).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gateway.keys import SCOPES, TOKEN_FORMAT, ApiKey, KeyStore
from gateway.store import retrying

_BEARER = HTTPBearer(
    auto_error=False,
    bearerFormat=TOKEN_FORMAT,
    description="A gateway API key, made with `ptychoagent keys create`.",
)
_HEADER = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="The same API key, for clients that cannot set Authorization.",
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
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
        header: Annotated[str | None, Depends(_HEADER)],
    ) -> ApiKey:
        token = bearer.credentials if bearer is not None else header
        # retried like every write: a dropped connection (a database restart) is not a 503
        key = await asyncio.to_thread(retrying, lambda: store.authenticate(token), 5, time.sleep)
        if not any(name in key.scopes for name in alternatives):
            store.require(key, scope)
        return key

    return api_key
