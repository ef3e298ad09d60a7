"""The gateway's prediction store on both databases, for the store's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import PredictionStore
from services.common.database import make_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    return str(request.getfixturevalue("empty_postgres"))


@pytest.fixture
def store(database_url: str) -> Iterator[PredictionStore]:
    engine = make_engine(database_url)
    store = PredictionStore(engine, sleep=lambda _: None)
    store.create_schema()
    yield store
    engine.dispose()
