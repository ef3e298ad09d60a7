"""The gateway's record in the project database, one store over the rooms' tables:
predictions with their provenance and images (:mod:`gateway.predictions`), expert
feedback (:mod:`gateway.feedback`) and the answers kept for ``Idempotency-Key`` replays
(:mod:`gateway.idempotency`). The rows are in :mod:`gateway.tables`; the tables come
from the project's migrations (revision 0003 onwards), never from ``create_all``.
"""

from __future__ import annotations

from gateway.feedback import FeedbackTables
from gateway.idempotency import IdempotencyTables
from gateway.predictions import PredictionTables
from services.common.database import migrate


class PredictionStore(PredictionTables, FeedbackTables, IdempotencyTables):
    """Reads and writes the gateway's tables; synchronous and thread-safe."""

    def create_schema(self) -> None:
        migrate(self.engine)
