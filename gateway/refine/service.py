"""The closed loop (``POST /v1/refine``): reconstruct, diagnose, recommend, apply the
letters, reconstruct again, diagnose again, and keep the change only if the evidence
says it helped (:func:`ptychobench.refine.judge`; the rule is in ``docs/refine.md``).

Life of a job::

    submit ─ experiment checked (422, nothing stored) ─▶ queued ─▶ running ─▶ done
                                                                    ├──▶ failed
                                       DELETE ──────────────────────┴──▶ cancelled
    start-up: queued/running (the gateway stopped) ─▶ resumed from the last stored
              state, or interrupted after ``refine_max_attempts`` starts

Every round is stored with its state after it, in one transaction, so a resumed job
goes on from the round after the last stored one. A rejected round ends the loop: the
recommender decodes greedily, so asked about the same state again it would propose the
same letters.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from gateway.bench.config import allowed_dataset
from gateway.keys import ApiKey
from gateway.refine.reading import RefineReading
from gateway.refine.reconstruct import EXPERIMENT_FILE, CancelledError, Recon, reconstruct
from gateway.refine.store import RefineJob, RefineStore, Round
from gateway.service import GatewayService
from ptychobench.labels import NO_ARTIFACTS
from ptychobench.refine import (
    AcceptanceRule,
    Evidence,
    apply_letters,
    judge,
    option_overrides,
    options_diff,
    update_parameters,
)
from ptychowire.agent import RecommendRequest, SampleInfo
from ptychowire.diagnosis import DiagnoseOptions
from ptychowire.refine import (
    RefineJobResponse,
    RefineRequest,
)
from services.common.encoding import decode_base64
from services.common.errors import (
    Conflict,
    InvalidInput,
    PayloadTooLarge,
    ServiceError,
)
from services.common.upstream import Upstream

log = logging.getLogger(__name__)
IMAGE_FILE = "image"


class RefineService(RefineReading):
    """Refinement jobs of this gateway process (reading them back and their reviews:
    :class:`gateway.refine.reading.RefineReading`)."""

    def __init__(
        self, store: RefineStore, gateway: GatewayService, reconstructor: Upstream
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.reconstructor = reconstructor
        self.settings = gateway.settings
        self.metrics = gateway.metrics
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    # ------------------------------------------------------------------ submission

    async def submit(
        self,
        request: RefineRequest,
        experiment: bytes | None,
        image: bytes | None,
        key: ApiKey,
    ) -> RefineJobResponse:
        """Check the experiment, store it and queue the job; a bad experiment is refused
        with a 422 (nothing stored, nothing queued)."""
        if (experiment is None) == (request.experiment_path is None):
            raise InvalidInput(
                "send the experiment as the file part 'experiment' or name it in "
                "experiment_path, not both and not neither"
            )
        if request.image_base64 is not None:
            if image is not None:
                raise InvalidInput("send the existing image once: file part or image_base64")
            image = decode_base64(request.image_base64)
        if experiment is None:
            assert request.experiment_path is not None
            experiment = await asyncio.to_thread(self._read_allowed, request.experiment_path)
        if len(experiment) > self.settings.max_experiment_bytes:
            raise PayloadTooLarge(
                f"the experiment has {len(experiment)} bytes; at most "
                f"{self.settings.max_experiment_bytes} are accepted"
            )
        job_id = uuid.uuid4().hex
        folder = Path(self.settings.refine_dir) / job_id
        try:
            await asyncio.to_thread(self._check_and_keep, folder, experiment, image)
        except BaseException:
            await asyncio.to_thread(_remove, folder)
            raise
        body = request.model_dump(mode="json", exclude={"image_base64", "experiment_path"})
        body["experiment_path"] = request.experiment_path
        body["has_image"] = image is not None
        job = await asyncio.to_thread(
            self.store.add,
            job_id,
            api_key_id=key.id,
            sample_type=request.sample_type,
            instrument=request.instrument,
            request=body,
            experiment_path=str(folder / EXPERIMENT_FILE),
            experiment_sha256=hashlib.sha256(experiment).hexdigest(),
            max_rounds=request.max_rounds,
        )
        self.metrics.refine_jobs.labels(state="queued").inc()
        self._spawn(job_id)
        return self.response(job, [], {})

    def _read_allowed(self, name: str) -> bytes:
        path = allowed_dataset(name, self.settings.bench_dataset_roots, Path.cwd())
        if not path.is_file():
            raise InvalidInput(f"experiment_path {name!r} is not a file", field="experiment_path")
        if path.stat().st_size > self.settings.max_experiment_bytes:
            raise PayloadTooLarge(f"{name!r} is over {self.settings.max_experiment_bytes} bytes")
        return path.read_bytes()

    def _check_and_keep(self, folder: Path, experiment: bytes, image: bytes | None) -> None:
        from ptychobench.experiment_io import ExperimentError, read_experiment

        folder.mkdir(parents=True, exist_ok=False)
        path = folder / EXPERIMENT_FILE
        path.write_bytes(experiment)
        try:
            read_experiment(path)
        except ExperimentError as error:
            raise InvalidInput(
                f"the experiment is not valid: {error}", field=error.field
            ) from error
        if image is not None:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(__import__("io").BytesIO(image)) as opened:
                    opened.verify()
            except (UnidentifiedImageError, OSError, SyntaxError) as error:
                raise InvalidInput(f"the existing image cannot be read: {error}") from error
            (folder / IMAGE_FILE).write_bytes(image)

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Resume the jobs a stopped gateway left (or mark them interrupted)."""
        resumed, interrupted = await asyncio.to_thread(
            self.store.recover, self.settings.refine_max_attempts
        )
        for job_id in interrupted:
            self.metrics.refine_jobs.labels(state="interrupted").inc()
            log.warning("refinement job %s interrupted", job_id)
        for job_id in resumed:
            self.metrics.refine_jobs.labels(state="queued").inc()
            log.info("refinement job %s resumed", job_id)
            self._spawn(job_id)

    async def stop(self) -> None:
        """Stop the running loops (at shutdown); they resume at the next start."""
        self._stopping = True
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def _spawn(self, job_id: str) -> None:
        task = asyncio.create_task(self._run(job_id))
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job_id, None))

    async def cancel(self, job_id: str) -> RefineJobResponse:
        before = await asyncio.to_thread(self.store.cancel, job_id)
        if before not in ("queued", "running"):
            raise Conflict(f"refinement job {job_id} is {before} already")
        task = self.tasks.get(job_id)
        if task is None:  # not running in this process: it will never look
            await self._finish(job_id, "cancelled", error="cancelled before it started")
        return await self.job(job_id)

    async def _finish(
        self, job_id: str, state: str, outcome: str | None = None, error: str | None = None
    ) -> None:
        if await asyncio.to_thread(self.store.finish, job_id, state, outcome, error):
            self.metrics.refine_jobs.labels(state=state).inc()

    # ------------------------------------------------------------------ the loop

    async def _run(self, job_id: str) -> None:
        try:
            if not await asyncio.to_thread(self.store.start, job_id):
                return
            self.metrics.refine_jobs.labels(state="running").inc()
            job = await asyncio.to_thread(self.store.get, job_id)
            if job.cancel_requested:
                raise CancelledError
            outcome = await self._loop(job)
            await self._finish(job_id, "done", outcome)
        except CancelledError:
            await self._finish(job_id, "cancelled", error="cancelled on request")
        except asyncio.CancelledError:
            if self._stopping:  # shutdown: queued again, resumed at the next start
                await asyncio.to_thread(self.store.requeue, job_id)
            raise
        except ServiceError as error:
            log.warning("refinement job %s failed: %s", job_id, error.detail)
            await self._finish(job_id, "failed", error=f"{error.title}: {error.detail}")
        except Exception as error:
            log.exception("refinement job %s failed unexpectedly", job_id)
            await self._finish(job_id, "failed", error=f"{type(error).__name__}: {error}")

    async def _loop(self, job: RefineJob) -> str:
        from ptychobench.experiment_io import read_experiment
        from ptychobench.sim.reconstruct import ReconConfig

        experiment = await asyncio.to_thread(read_experiment, job.experiment_path)
        request = RefineRequest.model_validate(
            {k: v for k, v in job.request.items() if k not in ("has_image",)}
        )
        rule = AcceptanceRule(request.rule.max_loss_rise, request.rule.min_metric_gain)
        key = ApiKey(job.api_key_id or "refine", "refine", (), job.created_at)
        folder = Path(job.experiment_path).parent
        data = await asyncio.to_thread((folder / EXPERIMENT_FILE).read_bytes)
        current = job.current
        if current is None:  # round 1's start: the experiment as it is
            config = experiment.config
            preprocess = list(experiment.preprocess)
            recon = await self._reconstruct(job, data, config, preprocess, 1, "before")
            image = recon.image
            if job.request.get("has_image"):
                image = await asyncio.to_thread((folder / IMAGE_FILE).read_bytes)
            found = await self._diagnose(job, request, image, key)
            current = _state(
                config.model_dump(mode="json"),
                preprocess,
                dict(experiment.parameters),
                recon,
                found,
            )
            await asyncio.to_thread(self.store.save_state, job.id, current)
        if "outcome" in current:  # the gateway stopped after the last round was stored
            return str(current["outcome"])
        number = job.rounds_done + 1
        while number <= job.max_rounds:
            if not current["artifacts"] or current["artifacts"] == [NO_ARTIFACTS]:
                return "clean"
            started = time.perf_counter()
            await self._progress(job, number, "recommend")
            advice = await self.gateway.recommend(
                RecommendRequest(
                    sample=SampleInfo(
                        instrument=job.instrument,
                        sample_type=job.sample_type,
                        description=request.description,
                        artifacts=current["artifacts"],
                        parameters=current["parameters"],
                    ),
                    **request.recommendation.model_dump(),
                ),
                key,
                None,
                kind="refine",
            )
            before_config = ReconConfig.model_validate(current["options"])
            applied = apply_letters(
                before_config,
                current["preprocess"],
                advice.letters,
                n_positions=experiment.n_positions,
                sample_type=job.sample_type,
                instrument=job.instrument,
            )
            provenance = {
                "agent": {
                    "adapter": advice.adapter,
                    "k": advice.k,
                    "strategy": advice.strategy,
                    "seed": advice.seed,
                    "prompt_version": advice.prompt_version,
                    "prompt_hash": advice.prompt_hash,
                    "example_ids": advice.example_ids,
                    "raw_answer": advice.raw_answer,
                    "service_url": self.settings.agent.base_url,
                },
                "reconstructor_url": self.settings.reconstructor.base_url,
                "experiment_sha256": job.experiment_sha256,
            }
            item = Round(
                job_id=job.id,
                number=number,
                outcome="unchanged",
                adapter=advice.adapter,
                letters=list(advice.letters),
                applied=list(applied.applied),
                skipped=dict(applied.skipped),
                options_before=current["options"],
                options_diff=options_diff(before_config, applied.config),
                preprocess_before=list(current["preprocess"]),
                artifacts_before=list(current["artifacts"]),
                metrics_before=current["metrics"],
                loss_before=current["final_loss"],
                provenance=provenance,
                seconds=0.0,
                image_before_sha256=current["image_sha256"],
                diagnose_before_id=current["diagnose_id"],
                recommend_id=advice.prediction_id,
                recon_before_job=current["recon_job"],
            )
            self.metrics.prepare_refine(advice.adapter)
            if not applied.applied:
                if set(applied.preprocess) != set(current["preprocess"]):
                    item.preprocess_after = list(applied.preprocess)
                item.seconds = time.perf_counter() - started
                await self._store_round(item, {**current, "outcome": "unchanged"})
                return "unchanged"
            recon = await self._reconstruct(
                job, data, applied.config, list(applied.preprocess), number, "after"
            )
            found = await self._diagnose(job, request, recon.image, key, number)
            verdict = judge(
                Evidence(
                    current["final_loss"],
                    current["metrics"],
                    current["artifacts"],
                    before_config.noise_model,
                ),
                Evidence(recon.final_loss, recon.metrics, found.labels, applied.config.noise_model),
                applied.applied,
                rule,
            )
            item.outcome = "accepted" if verdict.accepted else "rejected"
            item.options_after = applied.config.model_dump(mode="json")
            item.preprocess_after = list(applied.preprocess)
            item.artifacts_after = list(found.labels)
            item.metrics_after = recon.metrics
            item.loss_after = recon.final_loss
            item.verdict = verdict.to_dict()
            item.image_after_sha256 = found.image.sha256
            item.diagnose_after_id = found.prediction_id
            item.recon_after_job = recon.job_id
            item.provenance["diagnosis"] = {
                "backend": found.backend,
                "adapter": found.adapter,
                "k": found.k,
                "strategy": found.strategy,
                "service_url": self.settings.diagnosis.base_url,
            }
            item.seconds = time.perf_counter() - started
            if verdict.accepted:
                current = _state(
                    item.options_after,
                    item.preprocess_after,
                    update_parameters(current["parameters"], applied.config),
                    recon,
                    found,
                )
                await self._store_round(item, current, verdict.loss_change, verdict.metric_gain)
            else:
                await self._store_round(
                    item,
                    {**current, "outcome": "rejected"},
                    verdict.loss_change,
                    verdict.metric_gain,
                )
                return "rejected"
            number += 1
        if not current["artifacts"] or current["artifacts"] == [NO_ARTIFACTS]:
            return "clean"
        return "max-rounds"

    async def _store_round(
        self,
        item: Round,
        current: dict[str, Any],
        loss_change: float | None = None,
        metric_gain: float | None = None,
    ) -> None:
        await asyncio.to_thread(self.store.add_round, item, current)
        self.metrics.refine_rounds.labels(adapter=item.adapter, outcome=item.outcome).inc()
        labels = {"adapter": item.adapter, "outcome": item.outcome}
        if loss_change is not None:
            self.metrics.refine_loss_change.labels(**labels).observe(loss_change)
        if metric_gain is not None:
            self.metrics.refine_metric_gain.labels(**labels).observe(metric_gain)

    async def _progress(self, job: RefineJob, number: int, stage: str, **extra: Any) -> None:
        await asyncio.to_thread(
            self.store.progress, job.id, {"round": number, "stage": stage, **extra}
        )

    async def _check_cancel(self, job_id: str) -> None:
        if (await asyncio.to_thread(self.store.get, job_id)).cancel_requested:
            raise CancelledError

    async def _diagnose(
        self, job: RefineJob, request: RefineRequest, image: bytes, key: ApiKey, number: int = 1
    ) -> Any:
        await self._check_cancel(job.id)
        await self._progress(job, number, "diagnose")
        options = DiagnoseOptions.model_validate(
            {
                **request.diagnosis.model_dump(),
                "sample": {
                    "sample_type": job.sample_type,
                    "instrument": job.instrument,
                    "description": request.description,
                },
            }
        )
        return await self.gateway.diagnose(options, image, key, None, kind="refine")

    async def _reconstruct(
        self,
        job: RefineJob,
        data: bytes,
        config: Any,
        preprocess: list[str],
        number: int,
        stage: str,
    ) -> Recon:
        """One reconstruction on the reconstructor, its progress kept with the job."""
        await self._check_cancel(job.id)

        async def progress(**values: Any) -> None:
            await self._progress(job, number, f"reconstruct {stage}", **values)

        return await reconstruct(
            self.reconstructor,
            data,
            option_overrides(config),
            preprocess,
            f"refine {job.id} round {number} {stage}",
            self.settings.refine_poll_s,
            progress,
            lambda: self._check_cancel(job.id),
        )


def _state(
    options: dict[str, Any] | None,
    preprocess: list[str] | None,
    parameters: dict[str, str],
    recon: Recon,
    found: Any,
) -> dict[str, Any]:
    """The job's current reconstruction (``RefineJob.current``): where the next round
    starts from, as the round that made it (or the experiment as it came) left it."""
    return {
        "options": options,
        "preprocess": preprocess,
        "parameters": parameters,
        "final_loss": recon.final_loss,
        "metrics": recon.metrics,
        "artifacts": found.labels,
        "image_sha256": found.image.sha256,
        "diagnose_id": found.prediction_id,
        "recon_job": recon.job_id,
    }


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
