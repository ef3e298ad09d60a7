"""The expert review page: server-rendered HTML over the gateway's own service, behind
the same API keys (kept in a session cookie, checked on every request).
The session's key and the rooms come through ``gateway.deps``.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt

from gateway.api import IMAGE_TYPES, Filter
from gateway.auth import admits, authenticate
from gateway.deps import JobsDep, KeysDep, RefineDep, ServiceDep
from gateway.keys import ApiKey
from gateway.ui import views
from gateway.ui.session import (
    CSRF_FIELD,
    PATH,
    SessionReader,
    SessionViewer,
    check_csrf,
    clear_key,
    csrf_token,
    remember_csrf,
    safe_next,
    set_key,
)
from ptychowire.gateway import FeedbackRequest, PredictionRecord
from ptychowire.refine import RefineJobResponse, RoundReviewRequest
from services.common.errors import InvalidInput, NotFound, Unauthorized

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
WINDOWS = {"24h": timedelta(days=1), "7d": timedelta(days=7), "all": None}
LIST_LIMIT = 100
CHOICES_LIMIT = 500
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Id = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
Number = Annotated[int, PathParam(ge=1, le=1000)]
REFINE_LIMIT = 50
VERDICTS = ("confirm", "reject")


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def _markdown(text: str) -> str:
    """report.md as HTML: tables on, raw HTML off (escaped), headings one level down
    (the page has its own ``h1``)."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"
    return str(md.renderer.render(tokens, md.options, {}))


router = APIRouter(prefix=PATH, include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES)
templates.env.filters["when"] = _when


def page(
    request: Request, name: str, key: ApiKey | None, status: int = 200, **context: Any
) -> Response:
    context |= {
        "key": key,
        "csrf": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "can_review": key is not None and admits(key, "review"),
        "can_read": key is not None and admits(key, "read"),
    }
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    remember_csrf(response, request)
    return response


def see(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


# ---------------------------------------------------------------- session


@router.get("/login")
async def login_form(request: Request, next: str | None = None, expired: bool = False) -> Response:
    notice = "Your session ended: the key is no longer accepted." if expired else None
    return page(request, "login.html", None, next=safe_next(next), notice=notice)


@router.post("/login")
async def login(request: Request, keys: KeysDep) -> Response:
    form = await request.form()
    check_csrf(request, _text(form.get(CSRF_FIELD)))
    target = safe_next(_text(form.get("next")))
    try:
        key = await authenticate(keys, _text(form.get("api_key")))
    except Unauthorized as error:
        return page(request, "login.html", None, 401, next=target, error=error.detail)
    if target == PATH and not admits(key, "read"):
        target = f"{PATH}/benchmarks"  # the page this key may read
    response = see(target)
    set_key(response, request, (_text(form.get("api_key")) or "").strip())
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, _text(form.get(CSRF_FIELD)))
    response = see(f"{PATH}/login")
    clear_key(response)
    return response


# ---------------------------------------------------------------- predictions


@router.get("")
async def recent(
    request: Request,
    service: ServiceDep,
    key: SessionReader,
    sample_type: Filter = None,
    instrument: Filter = None,
    adapter: Filter = None,
    unreviewed: bool = False,
) -> Response:
    chosen = {"sample_type": sample_type, "instrument": instrument, "adapter": adapter}
    found = await service.predictions(LIST_LIMIT, unreviewed=unreviewed, **chosen)
    everything = await service.predictions(CHOICES_LIMIT)
    choices = {
        name: sorted({getattr(p, name) for p in everything} | ({value} if value else set()))
        for name, value in chosen.items()
    }
    rows = [(p, views.option_changes(p.task, [t.label for t in p.labels])) for p in found]
    return page(
        request,
        "list.html",
        key,
        rows=rows,
        chosen=chosen,
        choices=choices,
        unreviewed=unreviewed,
    )


async def review_page(
    request: Request,
    service: Any,
    key: ApiKey,
    record: PredictionRecord,
    status: int = 200,
    checked: list[str] | None = None,
    **context: Any,
) -> Response:
    if checked is None:
        latest = record.feedback[-1] if record.feedback else None
        checked = latest.labels if latest else [t.label for t in record.labels]
    predicted = [t.label for t in record.labels]
    return page(
        request,
        "review.html",
        key,
        status,
        p=record,
        toggles=views.toggles(record.task, checked),
        changes=views.option_changes(record.task, predicted),
        predicted=set(predicted),
        pool=service.retriever is not None,
        **context,
    )


@router.get("/predictions/{prediction_id}")
async def review(
    request: Request,
    prediction_id: Id,
    service: ServiceDep,
    key: SessionReader,
    saved: bool = False,
) -> Response:
    try:
        record = await service.prediction(prediction_id)
    except NotFound as error:
        return page(request, "error.html", key, 404, message=error.detail)
    return await review_page(request, service, key, record, saved=saved)


@router.post("/predictions/{prediction_id}")
async def save_review(
    request: Request, prediction_id: Id, service: ServiceDep, key: SessionReader
) -> Response:
    form = await request.form()
    check_csrf(request, _text(form.get(CSRF_FIELD)))
    try:
        record = await service.prediction(prediction_id)
    except NotFound as error:
        return page(request, "error.html", key, 404, message=error.detail)
    labels = [value for value in form.getlist("labels") if isinstance(value, str)]
    if not admits(key, "review"):
        message = f"API key {key.name!r} has no 'feedback' scope: it may look, not correct."
        return await review_page(request, service, key, record, 403, labels, error=message)
    body = FeedbackRequest(
        labels=labels[:24],
        comment=(_text(form.get("comment")) or "")[:4000],
        add_to_pool=form.get("add_to_pool") == "on",
    )
    try:
        await service.feedback(prediction_id, body, key)
    except InvalidInput as error:
        return await review_page(request, service, key, record, 422, labels, error=error.detail)
    return see(f"{PATH}/predictions/{prediction_id}?saved=1")


@router.get("/predictions/{prediction_id}/image")
async def image(prediction_id: Id, service: ServiceDep, key: SessionReader) -> Response:
    data, fmt = await service.image(prediction_id)
    media = IMAGE_TYPES.get(fmt.upper(), "application/octet-stream")
    return Response(
        data,
        media_type=media,
        headers={
            "Cache-Control": "private, max-age=86400",
            "X-Content-Type-Options": "nosniff",
        },
    )


# ---------------------------------------------------------------- live F1


@router.get("/live-f1")
async def live_f1(
    request: Request,
    service: ServiceDep,
    key: SessionReader,
    window: Literal["24h", "7d", "all"] = "all",
) -> Response:
    span = WINDOWS[window]
    since = None if span is None else datetime.now(UTC) - span
    scores = await service.live_f1(since)
    reviewed = await asyncio.to_thread(service.store.reviewed, since)
    return page(
        request,
        "live_f1.html",
        key,
        scores=scores.scores,
        swaps=views.swaps(reviewed),
        window=window,
        windows=list(WINDOWS),
        reviewed=len(reviewed),
    )


# ---------------------------------------------------------------- refinements


@router.get("/refine")
async def refinements(request: Request, refine: RefineDep, key: SessionReader) -> Response:
    jobs = await asyncio.to_thread(refine.store.recent, REFINE_LIMIT)
    accepted = await asyncio.to_thread(refine.store.accepted, [j.id for j in jobs])
    return page(request, "refinements.html", key, jobs=jobs, accepted=accepted)


def refinement_page(
    request: Request, key: ApiKey, job: RefineJobResponse, status: int = 200, **context: Any
) -> Response:
    rounds = [
        (
            r,
            views.round_letters(r.letters, r.applied, r.skipped),
            views.metric_rows(r.metrics_before, r.metrics_after),
        )
        for r in job.rounds
    ]
    return page(request, "refinement.html", key, status, job=job, rounds=rounds, **context)


@router.get("/refine/{job_id}")
async def refinement(
    request: Request,
    job_id: Id,
    refine: RefineDep,
    key: SessionReader,
    reviewed: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Response:
    try:
        job = await refine.job(job_id)
    except NotFound as error:
        return page(request, "error.html", key, 404, message=error.detail)
    return refinement_page(request, key, job, reviewed=reviewed)


@router.post("/refine/{job_id}/rounds/{number}/review")
async def review_round(
    request: Request, job_id: Id, number: Number, refine: RefineDep, key: SessionReader
) -> Response:
    form = await request.form()
    check_csrf(request, _text(form.get(CSRF_FIELD)))
    try:
        job = await refine.job(job_id)
    except NotFound as error:
        return page(request, "error.html", key, 404, message=error.detail)
    if not admits(key, "review"):
        message = f"API key {key.name!r} has no 'feedback' scope: it may look, not review."
        return refinement_page(request, key, job, 403, error=message, error_round=number)
    verdict = _text(form.get("verdict"))
    if verdict not in VERDICTS:
        message = "choose confirm (the change helped) or reject (it did not)"
        return refinement_page(request, key, job, 422, error=message, error_round=number)
    body = RoundReviewRequest(
        verdict=verdict,  # type: ignore[arg-type]
        comment=(_text(form.get("comment")) or "")[:4000],
    )
    try:
        await refine.review(job_id, number, body, key)
    except (InvalidInput, NotFound) as error:
        return refinement_page(request, key, job, 422, error=error.detail, error_round=number)
    return see(f"{PATH}/refine/{job_id}?reviewed={number}#round-{number}")


@router.get("/refine/{job_id}/rounds/{number}/{which}.png")
async def round_image(
    job_id: Id,
    number: Number,
    which: Literal["before", "after"],
    refine: RefineDep,
    key: SessionReader,
) -> Response:
    data = await refine.image(job_id, number, which)
    return Response(
        data,
        media_type="image/png",
        headers={
            "Cache-Control": "private, max-age=86400",
            "X-Content-Type-Options": "nosniff",
        },
    )


# ---------------------------------------------------------------- benchmarks


@router.get("/benchmarks")
async def benchmarks(request: Request, jobs: JobsDep, key: SessionViewer) -> Response:
    runs = await asyncio.to_thread(jobs.store.list, 50)
    return page(request, "benchmarks.html", key, runs=runs, progress=jobs.progress)


@router.get("/benchmarks/{run_id}")
async def benchmark(request: Request, run_id: Id, jobs: JobsDep, key: SessionViewer) -> Response:
    try:
        run = await asyncio.to_thread(jobs.store.get, run_id)
    except NotFound as error:
        return page(request, "error.html", key, 404, message=error.detail)
    report, plot = None, False
    if run.report_dir is not None:
        folder = Path(run.report_dir)
        if (folder / "report.md").is_file():
            report = _markdown((folder / "report.md").read_text(encoding="utf-8"))
        plot = (folder / "f1_vs_k.png").is_file()
    return page(
        request,
        "benchmark.html",
        key,
        run=run,
        progress=jobs.progress.get(run.id),
        report=report,
        plot=plot,
    )


@router.get("/benchmarks/{run_id}/f1_vs_k.png")
async def benchmark_plot(run_id: Id, jobs: JobsDep, key: SessionViewer) -> Response:
    run = await asyncio.to_thread(jobs.store.get, run_id)
    path = Path(run.report_dir or "") / "f1_vs_k.png"
    if run.report_dir is None or not path.is_file():
        raise NotFound(f"run {run_id} has no F1-vs-k plot")
    return Response(path.read_bytes(), media_type="image/png")


def build_ui_router() -> APIRouter:
    """The ``/ui`` pages (the module's :data:`router`)."""
    return router


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
