"""A write retried after a commit whose acknowledgement was lost (the connection drops
between the server's commit and its answer, as in a database restart) is stored once:
feedback and predictions alike, on SQLite and PostgreSQL. Before write tokens, the
retried feedback was stored twice (benchmarks/db_faults.py found it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from gateway.predictions import Prediction
from gateway.store import PredictionStore
from gateway.tables import FeedbackRow, PredictionRow
from services.common.database import make_engine, migrate

from .test_idempotency_claims import PREDICTION


@pytest.fixture
def lost_acknowledgement() -> Iterator[list[int]]:
    """The next commit goes through, then the caller sees the connection drop."""
    dropped: list[int] = []

    def after_commit(session: Session) -> None:
        if not dropped:
            dropped.append(1)
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection lost"))

    event.listen(Session, "after_commit", after_commit)
    yield dropped
    event.remove(Session, "after_commit", after_commit)


def _count(store: PredictionStore, table: type) -> int:
    with Session(store.engine) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_feedback_is_stored_once_when_the_acknowledgement_is_lost(
    store: PredictionStore, lost_acknowledgement: list[int]
) -> None:
    prediction = Prediction(**PREDICTION)  # type: ignore[arg-type]
    store.add([prediction])
    lost_acknowledgement.clear()  # the next commit is the feedback's
    saved = store.add_feedback(prediction.id, ["Blurring"], "expert")
    assert lost_acknowledgement == [1]  # the drop happened, and the write was retried
    assert _count(store, FeedbackRow) == 1
    assert [f.id for f in store.feedback(prediction.id)] == [saved.id]


def test_predictions_are_stored_once_when_the_acknowledgement_is_lost(
    store: PredictionStore, lost_acknowledgement: list[int]
) -> None:
    prediction = Prediction(**PREDICTION)  # type: ignore[arg-type]
    store.add([prediction])
    assert lost_acknowledgement == [1]
    assert _count(store, PredictionRow) == 1


def test_revision_0007_goes_down_and_up(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    migrate_down = "0006"
    from alembic import command

    from services.common.database import _alembic_config

    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, migrate_down)
    with engine.connect() as connection:
        columns = list(connection.execute(text("SELECT * FROM gateway_feedback")).keys())
        assert "write_token" not in columns
    migrate(engine)
    with engine.connect() as connection:
        columns = list(connection.execute(text("SELECT * FROM gateway_feedback")).keys())
        assert "write_token" in columns
    engine.dispose()
