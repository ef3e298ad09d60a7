"""The reconstructor's own error: the job queue is full (503, with Retry-After)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ptychowire.problem import PROBLEM_MEDIA_TYPE
from services.common.errors import ServiceError, problem_for
from services.common.web import request_id_var


class QueueFullError(ServiceError):
    """As many jobs wait as the service allows (``max_queued``)."""

    status, title, slug = 503, "Queue full", "queue-full"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


def install_queue_full_handler(app: FastAPI) -> None:
    """problem+json as for every error, plus ``Retry-After``."""

    async def queue_full(request: Request, error: Exception) -> Response:
        assert isinstance(error, QueueFullError)
        return JSONResponse(
            problem_for(error, request_id_var.get()),
            status_code=error.http_status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers={"Retry-After": str(error.retry_after_s)},
        )

    app.add_exception_handler(QueueFullError, queue_full)
