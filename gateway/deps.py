"""The gateway's FastAPI dependencies, as ``Annotated`` aliases: what a route needs is
in its signature, and everything comes from ``app.state`` (set by ``create_app``), so
the routers are plain module-level objects.

- the rooms: :data:`ServiceDep`, :data:`JobsDep`, :data:`RefineDep`, and the key store
  :data:`KeysDep`;
- the API key a route admits, by the action it serves (``gateway.auth.ACCESS``):
  :data:`PredictKey`, :data:`ReviewKey`, :data:`ReadKey`, :data:`BenchKey`,
  :data:`AdminKey` (the review page's session keys are ``gateway.ui.session``'s).

No ``from __future__ import annotations``: FastAPI must see the dependencies made by
:func:`api_key` as objects, not as names to look up.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from gateway.auth import BEARER, HEADER, Action, authenticate, presented_token, require
from gateway.bench.jobs import BenchJobs
from gateway.keys import ApiKey, KeyStore
from gateway.refine.service import RefineService
from gateway.service import GatewayService
from services.common.web import get_service


def get_keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


def get_jobs(request: Request) -> BenchJobs:
    jobs: BenchJobs = request.app.state.jobs
    return jobs


def get_refine(request: Request) -> RefineService:
    refine: RefineService = request.app.state.refine
    return refine


KeysDep = Annotated[KeyStore, Depends(get_keys)]
ServiceDep = Annotated[GatewayService, Depends(get_service)]
JobsDep = Annotated[BenchJobs, Depends(get_jobs)]
RefineDep = Annotated[RefineService, Depends(get_refine)]


def api_key(action: Action) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits a request whose API key is active and may ``action``."""

    async def admitted(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        header: Annotated[str | None, Depends(HEADER)],
        keys: KeysDep,
    ) -> ApiKey:
        key = await authenticate(keys, presented_token(bearer, header))
        require(key, action)
        return key

    return admitted


PredictKey = Annotated[ApiKey, Depends(api_key("predict"))]
ReviewKey = Annotated[ApiKey, Depends(api_key("review"))]
ReadKey = Annotated[ApiKey, Depends(api_key("read"))]
BenchKey = Annotated[ApiKey, Depends(api_key("benchmarks"))]
AdminKey = Annotated[ApiKey, Depends(api_key("run benchmarks"))]
