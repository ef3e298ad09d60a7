"""Run a benchmark through the gateway: every item concurrently (bounded), each kept as
soon as it is answered, a killed run resumed where it stopped.

Items reach the services through a :class:`Predictor`: over HTTP with the gateway's
client (``ptychoagent bench``, :class:`ptychoagent.bench.HttpPredictor`), or in the
gateway's own process (``POST
/v1/benchmarks``). Either way each item carries an Idempotency-Key made from the run's
configuration hash and the item, so an item whose answer was lost with the runner (killed
after the gateway answered, before the item was stored) is replayed by the gateway on
resume, not computed again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gateway.bench import provenance as prov
from gateway.bench.config import CLOSED_LOOP, NO_STRATEGY, BenchConfig, Item, plan, task_name
from gateway.bench.records import ItemResult, RunRecord
from gateway.bench.store import RunInfo, RunStore
from gateway.metrics import outcomes
from ptychobench.labels import Task
from ptychowire.agent import RecommendRequest, SampleInfo
from ptychowire.diagnosis import DiagnoseOptions, SampleMeta

if TYPE_CHECKING:
    from ptychowire.gateway import DiagnosisAnswer, RecommendationAnswer

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]


class BenchAbortError(RuntimeError):
    """The run cannot go on (a request the gateway refuses for every item: an unknown
    adapter, a wrong key); the message says why."""


class ItemFailedError(Exception):
    """One item could not be answered (after the retries); the run goes on.

    ``fatal``: the gateway refused the request itself (4xx), which no retry and no
    other item will change."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


class Predictor(Protocol):
    """Where items are sent."""

    async def diagnose(
        self, options: DiagnoseOptions, image: bytes, idempotency_key: str
    ) -> DiagnosisAnswer: ...

    async def recommend(
        self, request: RecommendRequest, idempotency_key: str
    ) -> RecommendationAnswer: ...

    async def feedback(self, prediction_id: str, labels: list[str]) -> None: ...


@dataclass
class Progress:
    """How far a run is, for a progress bar: counts and the running micro-F1 per task
    over the items answered in this session and before it."""

    run_id: str
    total: int
    done: int = 0
    failed: int = 0
    resumed: int = 0
    started: float = field(default_factory=time.monotonic)
    counts: dict[str, list[int]] = field(default_factory=dict)

    def add(self, result: ItemResult) -> None:
        if result.error is not None:
            self.failed += 1
            return
        self.done += 1
        if result.task == CLOSED_LOOP:
            return  # its score is the fix rate, in the report
        found = outcomes(result.predicted, result.truth, result.task)
        tally = self.counts.setdefault(result.task, [0, 0, 0])
        for i, outcome in enumerate(("tp", "fp", "fn")):
            tally[i] += len(found[outcome])

    def micro_f1(self, task: str) -> float | None:
        tp, fp, fn = self.counts.get(task, [0, 0, 0])
        return None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def git_revision(root: Path = ROOT) -> str | None:
    """The checkout's commit, with ``-dirty`` when files differ from it; None outside
    a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head


def idempotency_key(config_hash: str, item: Item) -> str:
    digest = hashlib.sha256(item.key.encode()).hexdigest()[:24]
    return f"bench-{config_hash[:16]}-{digest}"


def _recommend_request(item: Item, strategy: str) -> RecommendRequest:
    """The recommendation request of an item (the recommendation task's, and the closed
    loop's for the same model, strategy, k and seed)."""
    from ptychobench.closed_loop import sample_info

    return RecommendRequest(
        sample=SampleInfo(**sample_info(item.sample)),
        sample_id=item.sample.id,
        k=item.k,
        strategy=strategy,  # type: ignore[arg-type]
        adapter=item.model.adapter,
        seed=item.seed,
    )


_RECONSTRUCTING = threading.Lock()
"""One closed-loop reconstruction at a time in this process: Pty-chi sets torch's
process-wide default device and dtype (see docs/reconstructor.md)."""


def _evaluate(item: Item, letters: list[str]) -> dict[str, Any]:
    """Apply the letters to the item's simulated sample and reconstruct (blocking: run
    it in a worker thread)."""
    from ptychobench.closed_loop import evaluate

    assert item.loop is not None
    assert item.release is not None
    with _RECONSTRUCTING:
        outcome = evaluate(
            item.loop,
            letters,
            variation=item.release.variation,
            min_fix_gain=item.release.min_fix_gain,
        ).to_dict()
    return {**outcome, "samples_sha256": item.release.samples_sha256}


async def answer(item: Item, predictor: Predictor, key: str) -> ItemResult:
    """Send one item and read the answer into a result (raises :class:`ItemFailedError`).
    A closed-loop item's letters (the model's answer, or a baseline arm's) are then
    applied and reconstructed in a worker thread."""
    sample = item.sample
    strategy = "ssfs" if item.strategy == NO_STRATEGY else item.strategy
    meta: Any = None
    outcome: dict[str, Any] | None = None
    if item.baseline:
        from ptychobench.closed_loop import baseline_letters

        assert item.loop is not None
        predicted, unmapped, raw = baseline_letters(item.model.name, item.loop, item.seed), [], ""
    elif item.task is Task.DETECTION:
        options = DiagnoseOptions(
            sample=SampleMeta(
                sample_type=sample.sample_type, instrument=sample.instrument, id=sample.id
            ),
            k=item.k,
            strategy=strategy,  # type: ignore[arg-type]
            backend=item.model.backend,
            adapter=item.model.adapter,
            seed=item.seed,
        )
        if sample.image is None:
            raise ItemFailedError(f"sample {sample.id} has no image")
        found = await predictor.diagnose(options, sample.image.read_bytes(), key)
        predicted, unmapped, raw = found.labels, found.unmapped, found.raw_answer
        meta = found
    else:
        advice = await predictor.recommend(_recommend_request(item, strategy), key)
        predicted, unmapped, raw = advice.letters, advice.unmapped, advice.raw_answer
        meta = advice
    if item.task == CLOSED_LOOP:
        try:
            outcome = await asyncio.to_thread(_evaluate, item, list(predicted))
        except ImportError as error:  # every item would repeat it
            raise ItemFailedError(
                f"the closed loop reconstructs with Pty-chi, which this process cannot "
                f"import (install the sim extra): {error}",
                fatal=True,
            ) from error
    return ItemResult(
        task=task_name(item.task),
        model=item.model.name,
        adapter=meta.adapter if meta is not None else "baseline",
        strategy=item.strategy,
        k=item.k,
        seed=item.seed,
        sample_id=sample.id,
        sample_type=sample.sample_type,
        truth=item.truth,
        predicted=tuple(predicted),
        raw_answer=raw,
        unmapped=tuple(unmapped),
        prediction_id=meta.prediction_id if meta is not None else None,
        latency_s=meta.latency_s if meta is not None else 0.0,
        prompt_tokens=meta.prompt_tokens if meta is not None else 0,
        completion_tokens=meta.completion_tokens if meta is not None else 0,
        outcome=outcome,
    )


def _failed(item: Item, error: str, prompt_sha256: str | None = None) -> ItemResult:
    return ItemResult(
        task=task_name(item.task),
        model=item.model.name,
        adapter=item.model.adapter
        or item.model.backend
        or ("baseline" if item.baseline else "default"),
        strategy=item.strategy,
        k=item.k,
        seed=item.seed,
        sample_id=item.sample.id,
        sample_type=item.sample.sample_type,
        truth=item.truth,
        predicted=(),
        error=error,
        prompt_sha256=prompt_sha256,
    )


async def run_benchmark(
    config: BenchConfig,
    store: RunStore,
    predictor: Predictor,
    *,
    gateway_url: str,
    root: Path | None = None,
    restart: bool = False,
    progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[RunInfo], Awaitable[None] | None] | None = None,
    engines: prov.Engines | None = None,
) -> RunInfo:
    """Send every item not yet answered, keep each result at once, and return the run.
    A relative dataset path is read from ``root`` (default: the working directory).

    A 4xx from the gateway for an item stops the run (status ``failed``): it is a
    configuration error that every other item would repeat. A cancelled run is marked
    ``interrupted``; run it again to resume.

    The run records its provenance (:func:`gateway.bench.provenance.collect`, with what
    the services said of themselves in ``engines``); a stored run whose adapters, prompts
    or data set changed is not resumed (:class:`~gateway.bench.store.RunChangedError`)
    unless ``restart``.
    """
    items = plan(config, root)
    revision = git_revision()
    made_with = await asyncio.to_thread(
        prov.collect, config, root or Path.cwd(), revision, engines, ROOT
    )
    run, done = await asyncio.to_thread(
        store.open, config, len(items), revision, gateway_url, restart, made_with
    )
    if on_start is not None:
        started = on_start(run)
        if started is not None:
            await started
    state = Progress(run.id, len(items))
    for result in await asyncio.to_thread(store.items, run.id):
        if result.error is None:
            state.add(result)
    state.resumed = state.done
    pending = [item for item in items if item.key not in done]
    log.info("run %s: %d items, %d to send", run.id, len(items), len(pending))
    if progress is not None:
        progress(state)
    semaphore = asyncio.Semaphore(config.concurrency)
    config_hash = config.hash()
    prompt_sha256 = made_with["prompt"]["sha256"]

    async def one(item: Item) -> None:
        async with semaphore:
            try:
                result = await answer(item, predictor, idempotency_key(config_hash, item))
                result = replace(result, prompt_sha256=prompt_sha256)
            except ItemFailedError as error:
                if error.fatal:
                    raise BenchAbortError(f"{item.key}: {error}") from error
                result = _failed(item, str(error), prompt_sha256)
            else:
                if (
                    config.feedback
                    and result.prediction_id is not None
                    and item.task != CLOSED_LOOP  # feedback is the recommendation task's
                ):
                    await predictor.feedback(result.prediction_id, list(result.truth))
            await asyncio.to_thread(store.save, run.id, item.key, result)
            state.add(result)
            if progress is not None:
                progress(state)

    try:
        try:
            async with asyncio.TaskGroup() as group:
                for item in pending:
                    group.create_task(one(item))
        except BaseExceptionGroup as errors:
            abort = next((e for e in errors.exceptions if isinstance(e, BenchAbortError)), None)
            if abort is None:
                raise
            await asyncio.to_thread(store.finish, run.id, "failed", str(abort))
            raise abort from None
    except (asyncio.CancelledError, KeyboardInterrupt):
        await asyncio.to_thread(store.finish, run.id, "interrupted", "stopped; run it again")
        raise
    failed = state.failed
    message = f"{failed} item(s) failed; run again to retry them" if failed else ""
    return await asyncio.to_thread(store.finish, run.id, "finished", message)


def run_record(run: RunInfo, dataset: str) -> RunRecord:
    return RunRecord(
        run_id=run.id,
        name=run.name,
        config_hash=run.config_hash,
        config=run.config,
        git_revision=run.git_revision,
        dataset=dataset,
        split=str(run.config.get("split", "test")),
        started_at=run.created_at.astimezone(UTC).isoformat(timespec="seconds"),
        finished_at=(
            run.finished_at.astimezone(UTC).isoformat(timespec="seconds")
            if run.finished_at
            else None
        ),
        gateway_url=run.gateway_url,
        provenance=run.provenance or {},
    )
