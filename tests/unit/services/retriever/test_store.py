"""The example store against real databases: SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from ptychobench.data import Sample
from ptychobench.labels import Task
from services.common.database import (
    head_revision,
    make_engine,
    migrate,
    normalise_url,
    ping,
    revision_of,
)
from services.retriever.store import ExampleStore, NewExample


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], ExampleStore]]:
    """Stores on one fresh database (several, as separate processes would have)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sub' / 'examples.db'}"
    else:
        url = request.getfixturevalue("empty_postgres")
    engines = []

    def factory() -> ExampleStore:
        engine = make_engine(url)
        engines.append(engine)
        store = ExampleStore(engine, refresh_s=0)
        store.create_schema()
        return store

    yield factory
    for engine in engines:
        engine.dispose()


def _example(i: int, task: Task = Task.DETECTION, **fields: object) -> NewExample:
    sample = Sample(
        id=f"s{i:03d}",
        sample_type=str(fields.pop("sample_type", "Siemens star")),
        artifacts=("Blurring",) if task is Task.DETECTION else (),
        options=("K",) if task is Task.RECOMMENDATION else (),
        split=str(fields.pop("split", "train")),
    )
    image = bytes([i % 256]) * 10 if task is Task.DETECTION else None
    return NewExample(sample, task, image, str(fields.pop("source", "dataset")), "test")


def test_upsert_inserts_then_updates_and_the_pool_sees_both(
    store_factory: Callable[[], ExampleStore],
) -> None:
    store = store_factory()
    assert store.upsert([_example(i) for i in range(5)]) == (5, 0)
    assert [s.id for s in store.pool(Task.DETECTION).samples] == [f"s{i:03d}" for i in range(5)]
    changed = _example(2, sample_type="Supercrystal")
    assert store.upsert([changed, _example(9)]) == (1, 1)
    pool = store.pool(Task.DETECTION)
    assert len(pool) == 6
    assert pool.by_id["s002"].sample_type == "Supercrystal"
    assert store.pool(Task.RECOMMENDATION).samples == ()


def test_a_pool_sees_what_another_process_added(store_factory: Callable[[], ExampleStore]) -> None:
    reader, writer = store_factory(), store_factory()
    writer.upsert([_example(1)])
    assert len(reader.pool(Task.DETECTION)) == 1
    writer.upsert([_example(2, source="feedback")])
    assert len(reader.pool(Task.DETECTION)) == 2


def test_fetch_keeps_the_order_asked_for_and_images_only_when_wanted(
    store_factory: Callable[[], ExampleStore],
) -> None:
    store = store_factory()
    store.upsert([_example(i) for i in range(4)])
    fetched = store.fetch(Task.DETECTION, ["s003", "s000", "nope", "s002"], images=True)
    assert [e.sample.id for e in fetched] == ["s003", "s000", "s002"]
    assert fetched[0].image == bytes([3]) * 10
    assert fetched[0].image_sha256 is not None
    assert store.fetch(Task.DETECTION, ["s001"], images=False)[0].image is None


def test_tasks_splits_and_sources_are_kept_apart(store_factory: Callable[[], ExampleStore]) -> None:
    store = store_factory()
    store.upsert(
        [
            _example(1),
            _example(1, Task.RECOMMENDATION),
            _example(2, split="test"),
            _example(3, source="feedback"),
        ]
    )
    assert [s.id for s in store.pool(Task.DETECTION, "train").samples] == ["s001", "s003"]
    assert [s.id for s in store.pool(Task.DETECTION, "test").samples] == ["s002"]
    assert store.counts() == [
        {"task": "detection", "split": "test", "source": "dataset", "count": 1},
        {"task": "detection", "split": "train", "source": "dataset", "count": 1},
        {"task": "detection", "split": "train", "source": "feedback", "count": 1},
        {"task": "recommendation", "split": "train", "source": "dataset", "count": 1},
    ]


def test_an_unknown_source_is_refused(store_factory: Callable[[], ExampleStore]) -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        store_factory().upsert([_example(1, source="rumour")])


def test_database_urls_and_ping() -> None:
    assert normalise_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    assert ping(make_engine("sqlite://"))
    assert not ping(make_engine("postgresql://nobody@127.0.0.1:1/none"))


def test_migrations_build_the_schema_and_adopt_a_database_made_before_them(
    tmp_path: Path,
) -> None:
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate(fresh)
    migrate(fresh)  # idempotent
    assert revision_of(fresh) == head_revision()
    assert "retriever_examples" in inspect(fresh).get_table_names()

    from services.retriever.store import Base

    old = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    Base.metadata.create_all(old)
    ExampleStore(old).upsert([_example(1)])
    migrate(old)
    assert len(ExampleStore(old).pool(Task.DETECTION)) == 1
    assert revision_of(old) == head_revision()
