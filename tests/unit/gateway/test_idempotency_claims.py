"""Idempotency-Keys claimed in the database (SQLite and PostgreSQL): one holder at a
time, its answer stored with its prediction or not at all, a failed call's key given
back, a dead holder's claim taken over after its lease, and the answers kept before the
claims existed (revision 0004) still replayed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from gateway.idempotency import Claim, Replay
from gateway.predictions import Prediction
from gateway.store import PredictionStore
from services.common.database import make_engine, migrate
from services.common.errors import Conflict

LEASE = timedelta(minutes=15)
PREDICTION = {
    "kind": "diagnose",
    "task": "detection",
    "sample_type": "Siemens star",
    "instrument": "Velociprobe",
    "labels": ["Blurring"],
    "raw_answer": "<answer>[Blurring]</answer>",
    "backend": "classifier",
    "adapter": "physics-v1@1",
    "service_url": "http://diagnosis",
    "seed": 0,
    "k": 0,
    "strategy": "ssfs",
    "latency_s": 0.1,
    "backend_latency_s": 0.05,
    "request": {},
}


def test_one_holder_and_its_answer_stored_with_the_prediction(store: PredictionStore) -> None:
    first = store.claim("key1", "scan-1", "diagnose", "h1", LEASE)
    assert isinstance(first, Claim)
    waiting = store.claim("key1", "scan-1", "diagnose", "h1", LEASE)
    assert waiting == Replay("diagnose", "h1", None)  # held, not answered yet
    assert store.replay("key1", "scan-1") is None
    assert isinstance(store.claim("key2", "scan-1", "diagnose", "h1", LEASE), Claim)
    prediction = Prediction(**PREDICTION)  # type: ignore[arg-type]
    store.add([prediction], (first, {"prediction_id": prediction.id}))
    assert first.answered
    again = store.claim("key1", "scan-1", "diagnose", "h1", LEASE)
    assert again == Replay("diagnose", "h1", {"prediction_id": prediction.id})


def test_a_failed_call_gives_the_key_back(store: PredictionStore) -> None:
    first = store.claim("key1", "scan-1", "diagnose", "h1", LEASE)
    assert isinstance(first, Claim)
    store.release(first)
    assert isinstance(store.claim("key1", "scan-1", "diagnose", "h1", LEASE), Claim)


def test_a_dead_holders_claim_is_taken_over_and_its_late_answer_refused(
    store: PredictionStore,
) -> None:
    dead = store.claim("key1", "scan-1", "diagnose", "h1", LEASE)
    assert isinstance(dead, Claim)
    heir = store.claim("key1", "scan-1", "diagnose", "h1", timedelta(0))  # lease run out
    assert isinstance(heir, Claim)
    assert heir.token != dead.token
    assert store.claim("key1", "scan-1", "diagnose", "h1", LEASE) == Replay("diagnose", "h1", None)
    late = Prediction(**PREDICTION)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="taken over"):
        store.add([late], (dead, {"prediction_id": late.id}))
    assert store.recent() == []  # the late answer's prediction was not kept either


def test_answers_kept_before_claims_are_replayed(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine, "0004")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO gateway_idempotency "
                "(api_key_id, key, endpoint, request_hash, response, created_at) "
                "VALUES ('key1', 'scan-1', 'diagnose', 'h1', '{\"prediction_id\": \"p1\"}', :now)"
            ),
            {"now": datetime.now(UTC)},
        )
    migrate(engine)
    store = PredictionStore(engine)
    kept = store.claim("key1", "scan-1", "diagnose", "h1", LEASE)
    assert kept == Replay("diagnose", "h1", {"prediction_id": "p1"})
    migrate(engine, "0004")  # and back
    migrate(engine)
    engine.dispose()
