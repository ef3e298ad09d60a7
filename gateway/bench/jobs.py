"""Benchmark runs started over HTTP (``POST /v1/benchmarks``): run in the gateway's own
process, each item through the same code as a beamline's request (stored, counted,
idempotent), reports written under the gateway's ``reports_dir``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.bench.baselines import read_dataset
from gateway.bench.config import BenchConfig, allowed_dataset
from gateway.bench.report import build_report, write_report
from gateway.bench.runner import (
    BenchAbortError,
    ItemFailedError,
    Progress,
    run_benchmark,
    run_record,
)
from gateway.bench.store import RunInfo, RunStore
from gateway.idempotency import request_hash
from gateway.keys import ApiKey
from gateway.service import GatewayService
from ptychowire.agent import RecommendRequest
from ptychowire.diagnosis import DiagnoseOptions
from ptychowire.gateway import DiagnosisAnswer, FeedbackRequest, RecommendationAnswer
from services.common.errors import ServiceError
from services.common.retry import refused

log = logging.getLogger(__name__)


@contextmanager
def _failures() -> Iterator[None]:
    try:
        yield
    except ServiceError as error:
        status = error.http_status
        raise ItemFailedError(
            f"{status} {error.title}: {error.detail}", fatal=refused(status)
        ) from error


class ServicePredictor:
    """Items through the gateway's service in-process, as the key that started the run."""

    def __init__(self, service: GatewayService, key: ApiKey) -> None:
        self.service = service
        self.key = key

    async def diagnose(
        self, options: DiagnoseOptions, image: bytes, idempotency_key: str
    ) -> DiagnosisAnswer:
        with _failures():
            content, _ = await self.service.once(
                self.key,
                idempotency_key,
                "diagnose",
                request_hash("diagnose", options, image),
                lambda claim: self.service.diagnose(options, image, self.key, None, claim),
            )
        return DiagnosisAnswer.model_validate(content)

    async def recommend(
        self, request: RecommendRequest, idempotency_key: str
    ) -> RecommendationAnswer:
        with _failures():
            content, _ = await self.service.once(
                self.key,
                idempotency_key,
                "recommend",
                request_hash("recommend", request),
                lambda claim: self.service.recommend(request, self.key, None, claim),
            )
        return RecommendationAnswer.model_validate(content)

    async def feedback(self, prediction_id: str, labels: list[str]) -> None:
        with _failures():
            await self.service.feedback(
                prediction_id, FeedbackRequest(labels=labels, expert="benchmark"), self.key
            )


class BenchJobs:
    """The runs this gateway process is running, and their progress."""

    def __init__(
        self, store: RunStore, service: GatewayService, reports_dir: Path, root: Path | None = None
    ) -> None:
        self.store = store
        self.service = service
        self.reports_dir = reports_dir
        self.root = root
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.progress: dict[str, Progress] = {}

    async def start(self, config: BenchConfig, key: ApiKey, restart: bool = False) -> RunInfo:
        """Start (or resume) the run of ``config``; returns once it is recorded.
        ``BenchConfigError`` (a 422) when its dataset is outside the allowed roots or
        makes no run; :class:`~gateway.bench.store.RunChangedError` (a 409) when the
        stored run was made with other adapters, prompts or data and ``restart`` (begin
        a new run) is not given."""
        allowed_dataset(
            config.dataset, self.service.settings.bench_dataset_roots, self.root or Path.cwd()
        )
        opened: asyncio.Future[RunInfo] = asyncio.get_running_loop().create_future()

        async def on_start(run: RunInfo) -> None:
            if run.id in self.tasks and not self.tasks[run.id].done():
                opened.set_exception(RunningError(run.id))
                raise asyncio.CancelledError
            opened.set_result(run)

        async def job() -> None:
            try:
                run = await run_benchmark(
                    config,
                    self.store,
                    ServicePredictor(self.service, key),
                    gateway_url="in-process",
                    root=self.root,
                    restart=restart,
                    progress=lambda state: self._progress(config.name, state),
                    on_start=on_start,
                    engines=await self._engines(),
                )
                items = await asyncio.to_thread(self.store.items, run.id)
                dataset = await asyncio.to_thread(read_dataset, config.dataset, self.root)
                report = build_report(items, run_record(run, config.dataset), dataset=dataset)
                out = self.reports_dir / config.name
                await asyncio.to_thread(write_report, report, out)
                await asyncio.to_thread(
                    self.store.finish, run.id, run.status, run.message, str(out)
                )
            except BenchAbortError as error:
                log.warning("benchmark %s stopped: %s", config.name, error)
            except Exception as error:
                if not opened.done():
                    opened.set_exception(error)
                else:
                    log.exception("benchmark %s failed", config.name)
            finally:
                if not opened.done():
                    opened.cancel()

        task = asyncio.create_task(job())
        run = await opened
        self.tasks[run.id] = task
        return run

    async def _engines(self) -> dict[str, dict[str, Any]]:
        """What the diagnosis and agent services say they answer with (``GET /info``),
        by task; a service that does not say is left out of the run's provenance."""
        found: dict[str, dict[str, Any]] = {}
        services = (
            ("detection", self.service.diagnosis),
            ("recommendation", self.service.agent),
            ("closed_loop", self.service.agent),
        )
        for task, upstream in services:
            try:
                response, _ = await upstream.request("GET", "/info", label="info")
                found[task] = dict(response.json())
            except (ServiceError, ValueError, TypeError) as error:
                log.warning("benchmark provenance: no /info from the %s service: %s", task, error)
        return found

    def _progress(self, name: str, state: Progress) -> None:
        self.progress[state.run_id] = state
        gauge = self.service.metrics.benchmark_items
        for kind, value in (("total", state.total), ("done", state.done), ("failed", state.failed)):
            gauge.labels(run=state.run_id, name=name, state=kind).set(value)

    async def stop(self) -> None:
        """Cancel running jobs (at shutdown): they are marked interrupted and resume when
        started again."""
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


class RunningError(Exception):
    """The run of this configuration is running already."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"benchmark run {run_id} is running already")
        self.run_id = run_id
