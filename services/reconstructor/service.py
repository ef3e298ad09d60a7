"""Reconstruction jobs: checked on submission, queued in the database, run by a bounded
pool of workers, each a Pty-chi reconstruction in a thread.

Life of a job::

    submit ─ experiment checked (4xx, nothing stored) ─▶ queued ─▶ running ─▶ done
                                                          │          ├──▶ failed
                                          DELETE ─────────┴──────────┴──▶ cancelled
    start-up: running (the service died) ─▶ queued again, or interrupted after
              ``max_attempts`` starts

A worker takes a job id from the in-memory queue and claims the row (queued → running);
a job cancelled while it waited fails the claim and is skipped. Pty-chi runs one epoch
at a time; after each, progress is recorded and cancellation, the time limit and
shutdown are checked. On a graceful shutdown a running job is queued again (the attempt
not counted); after a crash, :meth:`JobStore.recover` finds it at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import UploadFile

from ptychobench.experiment_io import Experiment, ExperimentError, read_experiment
from ptychowire.reconstructor import (
    FINISHED,
    JobLinks,
    JobRequest,
    JobResponse,
    JobResult,
    Progress,
)
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from services.reconstructor.errors import QueueFullError
from services.reconstructor.metrics import ReconstructorMetrics
from services.reconstructor.settings import ReconstructorSettings
from services.reconstructor.store import Job, JobStore

log = logging.getLogger(__name__)

EXPERIMENT_FILE = "experiment.h5"
RESULT_FILE = "reconstruction.h5"
IMAGE_FILE = "phase.png"
CHUNK = 1 << 20


class _StopError(Exception):
    """Raised in the epoch callback to end a reconstruction early."""

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


@dataclass
class _Live:
    """What a running job's thread and the routes share."""

    cancel: threading.Event = field(default_factory=threading.Event)
    epochs_done: int = 0


def links(job_id: str) -> JobLinks:
    base = f"/v1/jobs/{job_id}"
    return JobLinks(
        self=base,
        result=f"{base}/result",
        image=f"{base}/result/image.png",
        reconstruction=f"{base}/result/reconstruction.h5",
    )


class ReconstructorService:
    def __init__(
        self,
        store: JobStore,
        settings: ReconstructorSettings,
        metrics: ReconstructorMetrics,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.jobs_dir = Path(settings.data_dir) / "jobs"
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._live: dict[str, _Live] = {}
        self._submit_lock = asyncio.Lock()
        self._stopping = threading.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._workers: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Migrate, recover jobs a dead service left running, start the workers."""
        await asyncio.to_thread(self.store.create_schema)
        requeued, interrupted = await asyncio.to_thread(
            self.store.recover, self.settings.max_attempts
        )
        for job_id in requeued:
            log.warning("job %s was running when the service stopped: queued again", job_id)
            self.metrics.jobs.labels(state="queued").inc()
        for job_id in interrupted:
            log.warning("job %s was running when the service stopped: interrupted", job_id)
            self.metrics.jobs.labels(state="interrupted").inc()
        self._queue = asyncio.Queue()
        for job_id in await asyncio.to_thread(self.store.ids, "queued"):
            self._queue.put_nowait(job_id)
        await self._count_waiting()
        self._stopping.clear()
        self._executor = ThreadPoolExecutor(self.settings.workers, "reconstructor")
        self._workers = [
            asyncio.create_task(self._worker(), name=f"reconstructor-worker-{i}")
            for i in range(self.settings.workers)
        ]

    async def stop(self) -> None:
        """Stop the workers; a running job ends at its next epoch and is queued again."""
        self._stopping.set()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, True)
            self._executor = None

    async def _count_waiting(self) -> None:
        """The queue-depth gauge, from the database (cancelled jobs may still sit in the
        in-memory queue until a worker skips them)."""
        self.metrics.queue_depth.set(await asyncio.to_thread(self.store.count, "queued"))

    async def ready(self) -> bool:
        return bool(self._workers) and all(not task.done() for task in self._workers)

    # ------------------------------------------------------------------ submission

    async def submit(self, request: JobRequest, upload: UploadFile | None) -> JobResponse:
        """Check the experiment and queue a job; nothing is kept if the check fails."""
        if request.experiment_path is not None and upload is not None:
            raise InvalidInput("send the experiment as an upload or as experiment_path, not both")
        if request.experiment_path is None and upload is None:
            raise InvalidInput(
                "no experiment: upload it as the multipart file part 'experiment' or name "
                "a server-side file in experiment_path"
            )
        async with self._submit_lock:
            waiting = await asyncio.to_thread(self.store.count, "queued")
            if waiting >= self.settings.max_queued:
                raise QueueFullError(
                    f"{waiting} jobs are waiting (the limit is {self.settings.max_queued}); "
                    "try again when some have finished",
                    retry_after_s=30,
                )
            job_id = uuid.uuid4().hex
            folder = self.jobs_dir / job_id
            try:
                if upload is not None:
                    path = await self._save_upload(upload, folder / EXPERIMENT_FILE)
                else:
                    path = self._server_path(request.experiment_path or "")
                experiment = await asyncio.to_thread(self._check, path, request)
                job = await asyncio.to_thread(
                    self.store.add,
                    job_id,
                    request.name or experiment.name,
                    request.model_dump(
                        mode="json", exclude_unset=True, exclude={"experiment_path"}
                    ),
                    str(path),
                    upload is not None,
                    self._config(experiment, request).num_epochs,
                )
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        self.metrics.jobs.labels(state="queued").inc()
        self._queue.put_nowait(job_id)
        await self._count_waiting()
        log.info("job %s queued (%s)", job_id, "upload" if upload else path)
        return self._response(job)

    async def _save_upload(self, upload: UploadFile, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        with target.open("wb") as out:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > self.settings.max_upload_bytes:
                    raise PayloadTooLarge(
                        f"the experiment has more than {self.settings.max_upload_bytes:,} "
                        "bytes (the limit)"
                    )
                await asyncio.to_thread(out.write, chunk)
        if size == 0:
            raise InvalidInput("the uploaded experiment is empty")
        return target

    def _server_path(self, name: str) -> Path:
        root = self.settings.allowed_root
        if root is None:
            raise Forbidden(
                "this reconstructor takes no server-side paths (RECONSTRUCTOR_ALLOWED_ROOT "
                "is unset); upload the experiment"
            )
        base = root.resolve()
        path = (base / name).resolve()
        if not path.is_relative_to(base):
            raise Forbidden(f"experiment_path {name!r} is outside the allowed root")
        if not path.is_file():
            raise InvalidInput(f"experiment_path {name!r}: no such file under the allowed root")
        return path

    def _check(self, path: Path, request: JobRequest) -> Experiment:
        """Read and check the experiment and the options it will run with."""
        try:
            experiment = read_experiment(path, self.settings.limits())
        except ExperimentError as error:
            raise InvalidInput(
                f"the experiment is not valid: {error}", field=error.field
            ) from error
        if experiment.object.shape[0] > 1:
            raise InvalidInput(
                "object: multislice objects are not supported by this reconstructor yet",
                field="object",
            )
        self._config(experiment, request)
        return experiment

    def _config(self, experiment: Experiment, request: JobRequest) -> Any:
        """The options a job runs with: the experiment's, the overrides, the service's
        device and threads."""
        from ptychobench.sim.reconstruct import ReconConfig

        values = {
            **experiment.config.model_dump(),
            **request.options.changes(),
            "device": self.settings.device,
            "torch_threads": self.settings.torch_threads,
        }
        try:
            config = ReconConfig.model_validate(values)
        except ValidationError as error:
            raise InvalidInput(f"the options are not valid: {error}") from error
        if config.num_epochs > self.settings.max_epochs:
            raise InvalidInput(
                f"num_epochs = {config.num_epochs} is above this service's limit "
                f"{self.settings.max_epochs}",
                field="options.num_epochs",
            )
        return config

    # ------------------------------------------------------------------ reading

    async def job(self, job_id: str) -> JobResponse:
        return self._response(await self._get(job_id))

    async def _get(self, job_id: str) -> Job:
        job = await asyncio.to_thread(self.store.get, job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def _response(self, job: Job) -> JobResponse:
        live = self._live.get(job.id)
        done = max(job.epochs_done, live.epochs_done if live else 0)
        if job.state == "done":
            done = job.epochs_total
        return JobResponse(
            id=job.id,
            state=job.state,  # type: ignore[arg-type]
            name=job.name,
            progress=Progress(epochs_done=done, epochs_total=job.epochs_total),
            attempts=job.attempts,
            cancel_requested=job.cancel_requested,
            error=job.error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            links=links(job.id),
        )

    async def _finished(self, job_id: str) -> Job:
        job = await self._get(job_id)
        if job.state != "done" or job.result is None:
            detail = f"job {job_id} is {job.state}; its result exists once it is done"
            if job.error:
                detail += f" ({job.error})"
            raise Conflict(detail, state=job.state)
        return job

    async def result(self, job_id: str) -> JobResult:
        job = await self._finished(job_id)
        return JobResult(id=job.id, links=links(job.id), **job.result)  # type: ignore[arg-type]

    async def result_file(self, job_id: str, name: str) -> Path:
        await self._finished(job_id)
        path = self.jobs_dir / job_id / name
        if not path.is_file():
            raise NotFound(f"job {job_id}'s {name} is gone (its folder was cleaned up)")
        return path

    # ------------------------------------------------------------------ cancelling

    async def cancel(self, job_id: str) -> tuple[JobResponse, bool]:
        """Cancel a job; returns it and whether it is cancelled already (a running job
        stops at the end of its current epoch)."""
        before = await asyncio.to_thread(self.store.cancel, job_id)
        if before is None:
            raise NotFound(f"no job {job_id!r}")
        if before in FINISHED:
            raise Conflict(f"job {job_id} is already {before}", state=before)
        if before == "queued":
            self.metrics.jobs.labels(state="cancelled").inc()
            await self._count_waiting()
            log.info("job %s cancelled while queued", job_id)
        else:
            live = self._live.get(job_id)
            if live is not None:
                live.cancel.set()
        return await self.job(job_id), before == "queued"

    # ------------------------------------------------------------------ running

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job_id = await self._queue.get()
            try:
                await loop.run_in_executor(self._executor, self._run, job_id)
                await self._count_waiting()
            except Exception:  # a worker outlives any one job
                log.exception("job %s: the worker failed", job_id)

    def _run(self, job_id: str) -> None:
        if self._stopping.is_set():
            return
        job = self.store.claim(job_id)
        if job is None:
            return  # cancelled while it waited
        self.metrics.queue_depth.set(self.store.count("queued"))
        live = _Live()
        self._live[job_id] = live
        if job.cancel_requested:
            live.cancel.set()
        self.metrics.jobs.labels(state="running").inc()
        self.metrics.running.inc()
        started = time.monotonic()
        state, error, result = "failed", None, None
        try:
            result = self._reconstruct(job, live, started)
            state = "done"
        except _StopError as stop:
            state, error = stop.state, stop.reason
        except (ExperimentError, InvalidInput, ValueError, RuntimeError) as failure:
            error = f"{type(failure).__name__}: {failure}"
            log.warning("job %s failed: %s", job_id, error)
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"
            log.exception("job %s failed unexpectedly", job_id)
        finally:
            self._live.pop(job_id, None)
            self.metrics.running.dec()
        seconds = time.monotonic() - started
        if state == "queued":  # the service is stopping: run it again after the restart
            self.store.requeue(job_id, count_attempt=False)
            self.metrics.jobs.labels(state="queued").inc()
            return
        self.store.finish(job_id, state, error=error, result=result, epochs_done=live.epochs_done)
        self.metrics.jobs.labels(state=state).inc()
        self.metrics.job_seconds.labels(state=state).observe(seconds)
        log.info("job %s %s after %.1f s", job_id, state, seconds)

    def _epoch_callback(
        self, job: Job, live: _Live, started: float
    ) -> Callable[[int, int, float], None]:
        last_write = 0.0
        limit = self.settings.job_timeout_s

        def on_epoch(done: int, total: int, loss: float) -> None:
            nonlocal last_write
            live.epochs_done = done
            now = time.monotonic()
            if now - last_write >= self.settings.progress_interval_s or done == total:
                self.store.progress(job.id, done)
                last_write = now
            if live.cancel.is_set():
                raise _StopError("cancelled", f"cancelled after {done} of {total} epochs")
            if self._stopping.is_set():
                raise _StopError("queued", "the service is stopping")
            if limit is not None and now - started > limit:
                raise _StopError(
                    "failed", f"ran past job_timeout_s = {limit:g} s after {done} epochs"
                )

        return on_epoch

    def _reconstruct(self, job: Job, live: _Live, started: float) -> dict[str, Any]:
        from ptychobench.experiment_io import Reconstruction, write_reconstruction
        from ptychobench.quality import no_reference_metrics, phase_image
        from ptychobench.sim.experiment import preprocess
        from ptychobench.sim.metrics import scan_mask
        from ptychobench.sim.reconstruct import reconstruct

        request = JobRequest.model_validate(job.request)
        experiment = read_experiment(job.experiment_path, self.settings.limits())
        config = self._config(experiment, request)
        steps = (
            tuple(request.preprocess) if request.preprocess is not None else experiment.preprocess
        )
        patterns = preprocess(experiment.patterns, steps)
        result = reconstruct(
            patterns,
            experiment.probe,
            experiment.positions_px,
            config=config,
            object_size=experiment.object_shape,
            initial_object=experiment.object[0],
            on_epoch=self._epoch_callback(job, live, started),
            valid_pixel_mask=experiment.valid_pixel_mask,
        )
        mask = scan_mask(experiment.object_shape, experiment.positions_px, experiment.probe_size)
        png, phase_range = phase_image(result.object, mask)
        metrics = no_reference_metrics(
            result.object, experiment.positions_px, experiment.probe_size
        )
        folder = self.jobs_dir / job.id
        folder.mkdir(parents=True, exist_ok=True)
        info = {
            "device": result.device,
            "seconds": round(result.seconds, 3),
            "job": job.id,
            "source": experiment.source,
        }
        write_reconstruction(
            folder / RESULT_FILE,
            Reconstruction(
                object=result.object[None],
                probe=result.probe,
                positions_px=result.positions,
                losses=result.losses,
                config=config,
                metrics=metrics,
                info=info,
            ),
            experiment.geometry,
            name=experiment.name,
        )
        (folder / IMAGE_FILE).write_bytes(png)
        return {
            "losses": list(result.losses),
            "final_loss": result.losses[-1] if result.losses else None,
            "metrics": metrics,
            "options": config.model_dump(mode="json"),
            "preprocess": list(steps),
            "object_shape": list(result.object.shape),
            "probe_shape": list(result.probe.shape),
            "phase_range": list(phase_range),
            "device": result.device,
            "seconds": round(result.seconds, 3),
            "experiment": {
                "name": experiment.name,
                "sample_type": experiment.sample_type,
                "instrument": experiment.instrument,
                "source": experiment.source,
                "n_positions": experiment.n_positions,
                "parameters": dict(experiment.parameters),
            },
        }
