"""The scope dependency on a minimal app driven in-process.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations,
and those name dependency aliases local to the app factory.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from gateway.auth import require_scope
from gateway.keys import ApiKey, KeyStore
from services.common.database import make_engine
from services.common.web import install_error_handlers

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KeyStore]:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    store = KeyStore(engine)
    store.create_schema()
    yield store
    engine.dispose()


def _client(store: KeyStore) -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)
    PredictKey = Annotated[ApiKey, Depends(require_scope(store, "predict"))]  # noqa: N806
    AdminKey = Annotated[ApiKey, Depends(require_scope(store, "admin"))]  # noqa: N806

    @app.post("/v1/predict")
    async def predict(key: PredictKey) -> dict[str, str]:
        return {"name": key.name}

    @app.get("/v1/adapters")
    async def adapters(key: AdminKey) -> dict[str, str]:
        return {"name": key.name}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def test_a_key_with_the_scope_is_admitted_by_either_header(store: KeyStore) -> None:
    _, token = store.create("beamline", ["predict"])
    async with _client(store) as client:
        bearer = await client.post("/v1/predict", headers={"Authorization": f"Bearer {token}"})
        header = await client.post("/v1/predict", headers={"X-API-Key": token})
    assert bearer.status_code == header.status_code == 200
    assert bearer.json() == header.json() == {"name": "beamline"}


async def test_a_missing_or_wrong_key_is_401_with_a_bearer_challenge(store: KeyStore) -> None:
    key, token = store.create("beamline", ["predict"])
    _, revoked = store.create("gone", ["predict"])
    store.revoke("gone")
    secret = token.split("_", 2)[2]
    wrong = f"pk_{key.id}_{secret[::-1]}"
    cases = {
        "no key": {},
        "basic auth": {"Authorization": "Basic dXNlcjpwYXNz"},
        "malformed": {"Authorization": "Bearer nonsense"},
        "wrong secret": {"X-API-Key": wrong},
        "revoked": {"Authorization": f"Bearer {revoked}"},
    }
    details = {}
    async with _client(store) as client:
        for case, headers in cases.items():
            response = await client.post("/v1/predict", headers=headers)
            assert response.status_code == 401, case
            assert response.headers["WWW-Authenticate"] == "Bearer", case
            assert response.headers["content-type"] == "application/problem+json", case
            body = response.json()
            assert body["type"].endswith("/unauthorized"), case
            assert secret not in body["detail"], case
            details[case] = body["detail"]
    assert "an API key is needed" in details["no key"]
    assert "an API key is needed" in details["basic auth"]
    assert "malformed" in details["malformed"]
    assert "does not match" in details["wrong secret"]
    assert "'gone'" in details["revoked"]
    assert "was revoked" in details["revoked"]


async def test_a_key_without_the_scope_is_403_naming_it(store: KeyStore) -> None:
    _, token = store.create("beamline", ["predict", "feedback"])
    _, admin = store.create("ops", ["admin"])
    async with _client(store) as client:
        refused = await client.get("/v1/adapters", headers={"Authorization": f"Bearer {token}"})
        also_refused = await client.post("/v1/predict", headers={"X-API-Key": admin})
        admitted = await client.get("/v1/adapters", headers={"X-API-Key": admin})
    assert refused.status_code == also_refused.status_code == 403
    assert "WWW-Authenticate" not in refused.headers
    body = refused.json()
    assert body["required_scope"] == "admin"
    assert body["key_scopes"] == ["predict", "feedback"]
    assert "'beamline' lacks the 'admin' scope" in body["detail"]
    assert admitted.json() == {"name": "ops"}


async def test_the_schemes_are_documented_and_scopes_checked_up_front(store: KeyStore) -> None:
    async with _client(store) as client:
        schemes = (await client.get("/openapi.json")).json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        require_scope(store, "root")
