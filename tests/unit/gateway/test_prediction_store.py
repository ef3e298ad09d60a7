"""The gateway's record against real databases (SQLite, PostgreSQL), including feedback
that survives the database refusing connections for a while."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from gateway.predictions import Prediction
from gateway.store import PredictionStore
from services.common.database import make_engine
from services.common.errors import NotFound


def _prediction(**fields: Any) -> Prediction:
    values: dict[str, Any] = {
        "kind": "diagnose",
        "task": "detection",
        "sample_type": "Siemens star",
        "instrument": "Velociprobe",
        "labels": ["Blurring"],
        "raw_answer": "<answer>[Blurring]</answer>",
        "backend": "vlm",
        "adapter": "vlm-sft",
        "service_url": "http://diagnosis:8103",
        "seed": 0,
        "k": 3,
        "strategy": "ssfs",
        "latency_s": 1.5,
        "backend_latency_s": 1.2,
        "request": {"sample": {"sample_type": "Siemens star"}, "k": 3},
        "example_ids": ["a", "b", "c"],
        "prompt_hash": "f" * 64,
    }
    values.update(fields)
    return Prediction(**values)


def test_a_prediction_keeps_its_provenance(store: PredictionStore) -> None:
    store.save_image("e" * 64, b"\x89PNG...", "png", 64, 48)
    store.save_image("e" * 64, b"\x89PNG...", "png", 64, 48)  # once per content
    prediction = _prediction(image_sha256="e" * 64)
    store.add([prediction])
    again = store.get(prediction.id)
    assert again == prediction
    assert store.image("e" * 64) == b"\x89PNG..."
    with pytest.raises(NotFound, match="no prediction 'nope'"):
        store.get("nope")


def test_recent_is_newest_first_and_filters(store: PredictionStore) -> None:
    older = _prediction(sample_type="Supercrystal")
    newer = _prediction(adapter="base", instrument="2-ID-D")
    analysis = [
        _prediction(analysis_id="x" * 32),
        _prediction(kind="recommend", task="recommendation", analysis_id="x" * 32),
    ]
    store.add([older])
    store.add([newer])
    store.add(analysis)
    assert store.recent(limit=2)[0].id in {a.id for a in analysis}
    assert [p.id for p in store.recent(sample_type="Supercrystal")] == [older.id]
    assert [p.id for p in store.recent(adapter="base")] == [newer.id]
    assert [p.id for p in store.recent(instrument="2-ID-D")] == [newer.id]
    store.add_feedback(older.id, ["Blurring"], "expert")
    assert older.id not in [p.id for p in store.recent(unreviewed=True)]
    assert len(store.recent(unreviewed=True)) == 3


def test_feedback_is_kept_in_order_and_needs_a_prediction(store: PredictionStore) -> None:
    prediction = _prediction()
    store.add([prediction])
    first = store.add_feedback(prediction.id, ["Halo artifacts"], "ana")
    second = store.add_feedback(prediction.id, ["Blurring"], "ben", "on second look", True)
    assert [f.expert for f in store.feedback(prediction.id)] == ["ana", "ben"]
    assert [f.id for f in store.feedback(prediction.id)] == [first.id, second.id]
    assert store.feedback(prediction.id)[-1].added_to_pool
    with pytest.raises(NotFound):
        store.add_feedback("missing", ["Blurring"], "ana")


def test_an_idempotency_key_keeps_the_first_answer(store: PredictionStore) -> None:
    assert store.replay("key1", "retry-1") is None
    first = store.remember("key1", "retry-1", "diagnose", "h1", {"prediction_id": "p1"})
    assert first.response == {"prediction_id": "p1"}
    late = store.remember("key1", "retry-1", "diagnose", "h1", {"prediction_id": "p2"})
    assert late.response == {"prediction_id": "p1"}
    replay = store.replay("key1", "retry-1")
    assert replay is not None
    assert replay.request_hash == "h1"
    assert store.replay("key2", "retry-1") is None  # keys are per API key


def test_feedback_waits_out_a_database_that_refuses_connections(empty_postgres: str) -> None:
    name = make_url(empty_postgres).database
    admin = create_engine(
        make_url(empty_postgres).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    engine = make_engine(empty_postgres)
    calls: list[float] = []

    def set_connections(allowed: bool) -> None:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {allowed}'))
            if not allowed:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )

    def sleep(seconds: float) -> None:  # the database comes back on the second wait
        calls.append(seconds)
        if len(calls) == 2:
            set_connections(True)

    store = PredictionStore(engine, sleep=sleep)
    store.create_schema()
    prediction = _prediction()
    store.add([prediction])
    set_connections(False)
    try:
        feedback = store.add_feedback(prediction.id, ["Blurring"], "expert")
    finally:
        set_connections(True)
        engine.dispose()
        admin.dispose()
    assert len(calls) == 2
    check = PredictionStore(make_engine(empty_postgres))
    assert [f.id for f in check.feedback(prediction.id)] == [feedback.id]
    check.engine.dispose()


def test_feedback_gives_up_after_its_retries(tmp_path: Path) -> None:
    calls: list[float] = []
    engine = create_engine(f"sqlite:///{tmp_path / 'absent' / 'x.db'}")  # folder never made
    store = PredictionStore(engine, retries=2, sleep=calls.append)
    with pytest.raises(OperationalError, match="unable to open database"):
        store.add_feedback("p", ["Blurring"], "expert")
    assert len(calls) == 2
