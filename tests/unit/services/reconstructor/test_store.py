"""The job table: its migration matches the model, and state changes are conditional
(on SQLite and, where a server runs, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from services.common.database import make_engine
from services.reconstructor.store import Base, JobStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        url = str(request.getfixturevalue("empty_postgres"))
    store = JobStore(make_engine(url))
    store.create_schema()
    yield store
    store.engine.dispose()


def test_the_migration_makes_the_models_table(store: JobStore) -> None:
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    ours = [d for d in diff if "reconstructor_jobs" in repr(d)]
    assert ours == []


def test_a_job_moves_only_from_the_state_it_is_in(store: JobStore) -> None:
    store.add("a", "name", {"options": {}}, "/x.h5", True, 5)
    assert store.ids("queued") == ["a"]
    claimed = store.claim("a")
    assert claimed is not None
    assert claimed.state == "running"
    assert claimed.attempts == 1
    assert store.claim("a") is None  # not queued any more
    store.progress("a", 3)
    assert store.cancel("a") == "running"  # asked to stop; the worker ends it
    job = store.get("a")
    assert job is not None
    assert job.cancel_requested
    assert job.epochs_done == 3
    assert store.finish("a", "cancelled", error="cancelled after 3 of 5 epochs")
    assert not store.finish("a", "done")  # never finished twice
    assert store.cancel("a") == "cancelled"
    assert store.cancel("nope") is None


def test_a_queued_job_is_cancelled_at_once_and_never_claimed(store: JobStore) -> None:
    store.add("b", "", {}, "/x.h5", True, 5)
    assert store.cancel("b") == "queued"
    job = store.get("b")
    assert job is not None
    assert job.state == "cancelled"
    assert job.finished_at is not None
    assert store.claim("b") is None


def test_recovery_requeues_once_then_marks_interrupted(store: JobStore) -> None:
    for name in ("fresh", "tried", "stopping"):
        store.add(name, "", {}, "/x.h5", True, 5)
        store.claim(name)
    store.requeue("tried", count_attempt=True)
    store.claim("tried")  # a second start
    store.cancel("stopping")
    requeued, interrupted = store.recover(max_attempts=2)
    assert requeued == ["fresh"]
    assert sorted(interrupted) == ["stopping", "tried"]
    states = {name: store.get(name).state for name in ("fresh", "tried", "stopping")}  # type: ignore[union-attr]
    assert states == {"fresh": "queued", "tried": "interrupted", "stopping": "cancelled"}
    tried = store.get("tried")
    assert tried is not None
    assert tried.error is not None
    assert "2 time(s)" in tried.error


def test_a_graceful_stop_does_not_count_the_attempt(store: JobStore) -> None:
    store.add("c", "", {}, "/x.h5", True, 5)
    store.claim("c")
    assert store.requeue("c", count_attempt=False)
    job = store.get("c")
    assert job is not None
    assert (job.state, job.attempts) == ("queued", 0)
