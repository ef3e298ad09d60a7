"""The gateway's routes. Every route names the API-key scope it needs; the work is in
:class:`gateway.service.GatewayService`.

The dependencies (the service, the API key's scope) are ``gateway.deps``'s aliases.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel

from gateway.bench.config import BenchConfig
from gateway.bench.jobs import BenchJobs, RunningError
from gateway.bench.store import RunInfo
from gateway.deps import (
    AdminKey,
    BenchKey,
    JobsDep,
    PredictKey,
    ReadKey,
    ReviewKey,
    ServiceDep,
)
from gateway.idempotency import IDEMPOTENCY_KEY_MAX, Claim, request_hash
from gateway.keys import ApiKey
from gateway.service import GatewayService
from ptychobench.images import DECODABLE, MEDIA_TYPES, media_type
from ptychowire.agent import RecommendRequest
from ptychowire.base import CleanText
from ptychowire.diagnosis import DiagnoseOptions
from ptychowire.gateway import (
    Analysis,
    AnalyzeOptions,
    BenchRun,
    DiagnosisAnswer,
    FeedbackRequest,
    FeedbackResponse,
    LiveF1Response,
    PredictionRecord,
    RecommendationAnswer,
)
from services.common.errors import Conflict, NotFound
from services.common.openapi import BACKEND_PROBLEMS, problem_responses
from services.common.uploads import openapi_body, read_image_body
from services.common.web import current_request_id

M = TypeVar("M", bound=BaseModel)
REPLAYED_HEADER = "Idempotent-Replayed"
IMAGE_TYPES = {fmt.upper(): media_type(fmt) for fmt in DECODABLE if fmt in MEDIA_TYPES}
IMAGE_MEDIA_TYPES = (*IMAGE_TYPES.values(), "application/octet-stream")
"""What ``/image`` answers: the upload's own type, octet-stream for ``.npy``."""
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
Filter = Annotated[CleanText | None, Query(max_length=200)]
"""A filter on stored predictions (the API's and the review page's)."""
RunId = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
PredictionId = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        description="Send the same key again to get the same answer, with no second "
        "model call (kept for `idempotency_ttl_h`).",
    ),
]


REPORT_FILES = {
    "report.json": "application/json",
    "report.md": "text/markdown; charset=utf-8",
    "cells.csv": "text/csv; charset=utf-8",
    "f1_vs_k.png": "image/png",
    "baselines.csv": "text/csv; charset=utf-8",
}


def _run(run: RunInfo, jobs: BenchJobs) -> BenchRun:
    progress = jobs.progress.get(run.id)
    f1 = {}
    if progress is not None:
        for task in progress.counts:
            value = progress.micro_f1(task)
            if value is not None:
                f1[task] = value
    return BenchRun(
        id=run.id,
        name=run.name,
        status=run.status,
        total=run.total,
        done=run.done,
        failed=run.failed,
        message=run.message,
        config_hash=run.config_hash,
        config=run.config,
        git_revision=run.git_revision,
        micro_f1=f1,
        report=run.report_dir,
        created_at=run.created_at,
        updated_at=run.updated_at,
        finished_at=run.finished_at,
    )


def _answer(content: dict[str, Any], replayed: bool) -> JSONResponse:
    return JSONResponse(content, headers={REPLAYED_HEADER: str(replayed).lower()})


async def _with_image(
    request: Request,
    service: GatewayService,
    key: ApiKey,
    idempotency_key: str | None,
    endpoint: str,
    options_model: type[M],
    call: Callable[[M, bytes, ApiKey, str | None, Claim | None], Awaitable[BaseModel]],
) -> Response:
    """An image route: read the body, answer once per Idempotency-Key."""
    options, image = await read_image_body(request, service.settings.max_image_bytes, options_model)
    content, replayed = await service.once(
        key,
        idempotency_key,
        endpoint,
        request_hash(endpoint, options, image),
        lambda claim: call(options, image, key, current_request_id(request), claim),
    )
    return _answer(content, replayed)


IDEMPOTENT_PROBLEMS = {**BACKEND_PROBLEMS, **problem_responses(409)}
"""A prediction route: a backend's problems, and an Idempotency-Key whose first request
is still being answered after the wait (409)."""


# every route: a key without the scope (403), the database down (503)
router = APIRouter(prefix="/v1", tags=["gateway"], responses=problem_responses(403, 503))


@router.post(
    "/diagnose",
    response_model=DiagnosisAnswer,
    responses=IDEMPOTENT_PROBLEMS,
    openapi_extra=openapi_body("DiagnoseRequest", "DiagnoseOptions"),
)
async def diagnose(
    request: Request, service: ServiceDep, key: PredictKey, idempotency_key: IdempotencyKey = None
) -> Response:
    """Which artifacts a reconstruction shows; the answer is kept as a prediction."""
    return await _with_image(
        request, service, key, idempotency_key, "diagnose", DiagnoseOptions, service.diagnose
    )


@router.post("/recommend", response_model=RecommendationAnswer, responses=IDEMPOTENT_PROBLEMS)
async def recommend(
    body: RecommendRequest,
    request: Request,
    service: ServiceDep,
    key: PredictKey,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Which reconstruction parameters to change; the answer is kept as a prediction."""
    content, replayed = await service.once(
        key,
        idempotency_key,
        "recommend",
        request_hash("recommend", body),
        lambda claim: service.recommend(body, key, current_request_id(request), claim),
    )
    return _answer(content, replayed)


@router.post(
    "/analyze",
    response_model=Analysis,
    responses=IDEMPOTENT_PROBLEMS,
    openapi_extra=openapi_body("AnalyzeRequest", "AnalyzeOptions"),
)
async def analyze(
    request: Request, service: ServiceDep, key: PredictKey, idempotency_key: IdempotencyKey = None
) -> Response:
    """Diagnose, then recommend with the detected artifacts as the observed ones."""
    return await _with_image(
        request, service, key, idempotency_key, "analyze", AnalyzeOptions, service.analyze
    )


@router.post("/feedback/{prediction_id}")
async def feedback(
    prediction_id: PredictionId, body: FeedbackRequest, service: ServiceDep, key: ReviewKey
) -> FeedbackResponse:
    """An expert's true labels for a prediction: into live F1, and optionally into
    the example pool. A later review of the same prediction replaces this one."""
    return await service.feedback(prediction_id, body, key)


@router.get("/predictions")
async def predictions(
    service: ServiceDep,
    key: ReadKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    sample_type: Filter = None,
    instrument: Filter = None,
    adapter: Filter = None,
    unreviewed: bool = False,
) -> list[PredictionRecord]:
    """The latest predictions, newest first."""
    return await service.predictions(
        limit,
        sample_type=sample_type,
        instrument=instrument,
        adapter=adapter,
        unreviewed=unreviewed,
    )


@router.get("/predictions/{prediction_id}")
async def prediction(
    prediction_id: PredictionId, service: ServiceDep, key: ReadKey
) -> PredictionRecord:
    """One prediction with its provenance and its reviews."""
    return await service.prediction(prediction_id)


@router.get(
    "/predictions/{prediction_id}/image",
    response_class=Response,
    responses={200: {"content": {media: {} for media in IMAGE_MEDIA_TYPES}}},
)
async def prediction_image(
    prediction_id: PredictionId, service: ServiceDep, key: ReadKey
) -> Response:
    """The image a diagnosis was made from, as uploaded."""
    data, fmt = await service.image(prediction_id)
    media = IMAGE_TYPES.get(fmt.upper(), "application/octet-stream")
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=86400"})


@router.get("/live-f1")
async def live_f1(
    service: ServiceDep,
    key: ReadKey,
    window: Literal["1h", "24h", "7d", "all"] = "all",
) -> LiveF1Response:
    """Micro-F1 per task and adapter over the predictions reviewed in ``window``."""
    since = None if window == "all" else datetime.now(UTC) - WINDOWS[window]
    return await service.live_f1(since)


@router.post("/benchmarks", status_code=202, responses=problem_responses(409))
async def start_benchmark(
    config: BenchConfig, jobs: JobsDep, key: AdminKey, restart: bool = False
) -> BenchRun:
    """Start a benchmark run through this gateway, or resume the stored run of the
    same configuration (409 if its adapters, prompts or data changed since: ask for a
    new run with ``restart=true``); ``GET /v1/benchmarks/{id}`` follows it."""
    try:
        run = await jobs.start(config, key, restart)
    except RunningError as error:
        raise Conflict(str(error), run_id=error.run_id) from None
    return _run(run, jobs)


@router.get("/benchmarks")
async def benchmarks(
    jobs: JobsDep, key: BenchKey, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[BenchRun]:
    """The latest runs, newest first."""
    runs = await asyncio.to_thread(jobs.store.list, limit)
    return [_run(run, jobs) for run in runs]


@router.get("/benchmarks/{run_id}")
async def benchmark(run_id: RunId, jobs: JobsDep, key: BenchKey) -> BenchRun:
    """A run's status and progress."""
    return _run(await asyncio.to_thread(jobs.store.get, run_id), jobs)


@router.get(
    "/benchmarks/{run_id}/{name}",
    response_class=Response,
    responses={200: {"content": {media: {} for media in REPORT_FILES.values()}}},
)
async def benchmark_file(run_id: RunId, name: str, jobs: JobsDep, key: BenchKey) -> Response:
    """A file of a finished run's report: report.json, report.md, cells.csv,
    f1_vs_k.png or baselines.csv."""
    if name not in REPORT_FILES:
        raise NotFound(f"no report file {name!r}; one of {sorted(REPORT_FILES)}")
    run = await asyncio.to_thread(jobs.store.get, run_id)
    if run.report_dir is None:
        raise NotFound(f"run {run_id} has no report yet (status {run.status})")
    path = Path(run.report_dir) / name
    if not path.is_file():
        raise NotFound(f"run {run_id}'s report has no {name}")
    return FileResponse(path, media_type=REPORT_FILES[name])
