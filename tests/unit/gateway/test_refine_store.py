"""The refinement tables: migration 0008 makes the models' tables and goes down and up
again, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from gateway.tables import Base
from services.common.database import MIGRATIONS, head_revision, make_engine, migrate, revision_of

TABLES = {"gateway_refine_jobs", "gateway_refine_rounds", "gateway_refine_reviews"}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    import gateway.refine.store  # noqa: F401  (its tables join gateway.tables.Base)

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = str(request.getfixturevalue("empty_postgres"))
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_the_migration_makes_the_models_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if "gateway_refine" in repr(d)] == []


def test_0008_goes_down_to_0007_and_up_again(engine: Engine) -> None:
    assert revision_of(engine) == head_revision()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    tables = set(inspect(engine).get_table_names())
    assert not tables & TABLES
    assert "reconstructor_jobs" in tables
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
