"""PtychoBench-Sim generation: plan, reconstruct, confirm, verify fixes, write a release.

The work is split into units that are each written to disk when they finish, so a run
that is killed resumes where it stopped (finished units are kept, unfinished ones redone;
nothing is duplicated because a unit's file name is its sample id):

1. **detect** (one per planned sample): the scene is reconstructed clean and with its
   fault(s); each label the recipe can cause is kept only when its image-metric check
   passes against the clean reconstruction. A sample whose fault did not show is drawn
   again from a new seed (up to ``max_attempts``), then given another fault (as often),
   then made a clean sample; one that cannot be made at all is replaced by a new sample
   of the same type.
2. **verify** (for recommendation samples): the fix letters' changes are applied to the
   same measured data and reconstructed again; a fix that does not move the metrics at
   least ``min_fix_gain`` of the way back to the clean reconstruction is not a label,
   and the sample is replaced by the next candidate.

The result is the authors' release layout plus ``metadata.json`` (generator version,
settings, counts, metric summaries) and ``samples.jsonl`` (per-sample provenance).

This module runs the units; the plan (settings, what each sample will be) is
:mod:`ptychobench.sim.plan` and the release's files :mod:`ptychobench.sim.assemble`.
What stays (a little over 500 lines) is one pipeline read top to bottom: the two units,
their resumable files, the worker pool and the loops that run them. It is left whole on
purpose: a running corpus job depends on its order of random draws, which a further
split could only put at risk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Final

import numpy as np

from ptychobench.data import Dataset, Sample, split_samples, write_release
from ptychobench.labels import NO_ARTIFACTS, NO_CHANGES
from ptychobench.quality import phase_image
from ptychobench.sim.assemble import (
    GENERATOR_VERSION,
    _dataset,
    _json,
    _sample,
    _write_atomic,
    _write_summary,
)
from ptychobench.sim.faults import (
    FAULTS,
    PROBE_SIZE,
    Setup,
    apply_fix,
    clean_config,
    confirmed_labels,
    parameters_block,
)
from ptychobench.sim.objects import object_metadata
from ptychobench.sim.plan import (
    PAIRS,
    PAPER_SIZES,
    PlanItem,
    SimSettings,
    make_plan,
    replacement,
    sample_id,
)
from ptychobench.sim.variation import (
    Variant,
    draw_variant,
    instruments_for,
)

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------- the work units

REFERENCE_LIMITS: Final = {"nrmse": (None, 0.7), "correlation": (0.7, None)}
"""The clean reconstruction every label is judged against must show the object."""
CLEAN_LIMITS: Final = {"nrmse": (None, 0.55), "residues": (None, 1.0), "correlation": (0.8, None)}
"""A sample labelled "No obvious artifacts" must reconstruct at least this well."""


def _within(
    metrics: Mapping[str, float], limits: Mapping[str, tuple[float | None, float | None]]
) -> bool:
    return all(
        (low is None or metrics[name] >= low) and (high is None or metrics[name] <= high)
        for name, (low, high) in limits.items()
    )


def _other_fault(settings: SimSettings, item: PlanItem, number: int) -> tuple[str, ...]:
    """A single fault other than the planned ones that suits the sample type on some
    instrument, drawn by weight (the retry when the planned fault did not show)."""
    from ptychobench.sim.faults import Scene

    rng = np.random.default_rng([settings.seed, 10, item.index, number])
    usable = [
        FAULTS[name]
        for name in settings.faults
        if name not in item.faults
        and any(
            FAULTS[name].applies_to(Scene(item.sample_type, instrument, 0, False))
            for instrument in instruments_for(settings.variation).values()
        )
    ]
    if not usable:
        return item.faults
    weights = np.array([f.weight for f in usable])
    return (usable[int(rng.choice(len(usable), p=weights / weights.sum()))].name,)


def _instrument_for(
    item: PlanItem, faults: tuple[str, ...], seed: int, attempt: int, variation: str
) -> str:
    """The planned instrument first; a retry may draw another that suits the faults."""
    from ptychobench.sim.faults import Scene

    if attempt == 0:
        return item.instrument
    rng = np.random.default_rng([seed, 8])
    names = [
        name
        for name, instrument in instruments_for(variation).items()
        if all(FAULTS[f].applies_to(Scene(item.sample_type, instrument, 0, False)) for f in faults)
    ]
    return names[int(rng.integers(len(names)))] if names else item.instrument


def _attempt_seed(settings_seed: int, index: int, attempt: int) -> int:
    digest = hashlib.sha256(f"{settings_seed}\x1f{index}\x1f{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def sample_variant(item: PlanItem, seed: int, variation: str) -> Variant:
    """How the experiment of ``item`` at attempt seed ``seed`` departs from its instrument."""
    from dataclasses import replace

    from ptychobench.sim.instruments import instrument_named

    variant = draw_variant(variation, seed, instrument_named(item.instrument).coherent_modes)
    if object_metadata(item.sample_type)["strong_phase"] and variant.phase_scale > 1.0:
        # far above 2π already: thicker still and even the clean reconstruction fails
        variant = replace(variant, phase_scale=1.0)
    return variant


def build_setups(
    item: PlanItem,
    faults: tuple[str, ...],
    seed: int,
    device: str = "cpu",
    variation: str = "none",
) -> tuple[Any, Setup, Setup]:
    """The scene data, its clean setup and its faulted setup (deterministic in ``seed``)."""
    from ptychobench.sim.experiment import make_scene, scene_for

    variant = sample_variant(item, seed, variation)
    instrument = variant.instrument(item.instrument)
    data = make_scene(
        item.sample_type, instrument, seed, variant.phase_scale, variant.absorption_scale
    )
    raster = any(name == "raster_poor_probe" for name in faults)
    config = clean_config(
        instrument,
        len(data.raster_positions if raster else data.positions),
        data.scene.strong_phase,
        device,
    )
    base = Setup(
        config=config.model_copy(update={"num_epochs": variant.epochs(config.num_epochs)}),
        scan_override="raster" if raster else None,
    )
    setup = base
    rng = np.random.default_rng([seed, 4])
    for name in faults:
        setup = FAULTS[name].apply(setup, scene_for(data, setup), rng)
    return data, base, setup


def _image_dir(out: Path, settings: SimSettings) -> Path:
    """Where a detect unit puts its phase image: the release's ``images/`` for the
    benchmark set; ``work/phase/`` where the release shows it rendered
    (:mod:`ptychobench.sim.render`)."""
    folder = out / ("images" if settings.variation == "none" else "work/phase")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def detect_unit(
    item: PlanItem, settings: SimSettings, out: Path, device: str = "cpu"
) -> dict[str, Any]:
    """Reconstruct one planned sample, confirm its labels, write its image and record."""
    from ptychobench.sim.experiment import positions_for, run_setup
    from ptychobench.sim.metrics import scan_mask

    started = time.perf_counter()
    dropped: list[dict[str, Any]] = []
    m = settings.max_attempts
    tries = [(item.faults, a) for a in range(m)]
    if item.faults:  # then another fault that suits the sample type, then a clean sample
        tries += [(_other_fault(settings, item, a), m + a) for a in range(m)]
        tries += [((), 2 * m + a) for a in range(m)]
    for faults, attempt in tries:
        seed = _attempt_seed(settings.seed, item.index, attempt)
        instrument = _instrument_for(item, faults, seed, attempt, settings.variation)
        item_now = PlanItem(item.index, item.id, item.sample_type, instrument, faults)
        data, base, setup = build_setups(item_now, faults, seed, device, settings.variation)
        try:
            clean, _ = run_setup(data, base)
            limits = REFERENCE_LIMITS if faults else CLEAN_LIMITS
            if not _within(clean.metrics, limits):
                reason = f"{instrument}: clean reconstruction too poor: " + ", ".join(
                    f"{k}={clean.metrics[k]:.3g}" for k in limits
                )
                dropped.append({"attempt": attempt, "faults": faults, "reason": reason})
                continue
            outcome = run_setup(data, setup)[0] if faults else clean
        except (RuntimeError, ValueError) as error:  # NaNs in Pty-chi: a diverged run
            dropped.append({"attempt": attempt, "faults": faults, "reason": repr(error)[:200]})
            continue
        confirmed = {
            name: confirmed_labels(FAULTS[name], outcome.metrics, clean.metrics) for name in faults
        }
        labels = sorted({label for found in confirmed.values() for label in found})
        if faults and not labels:
            dropped.append({"attempt": attempt, "faults": faults, "reason": "no label confirmed"})
            continue
        shown = [name for name in faults if confirmed[name]]
        letters = sorted({letter for name in shown for letter in FAULTS[name].fixes})
        fixable = all(FAULTS[name].fixes for name in shown)
        scene = data.scene
        mask = scan_mask(data.object.shape, positions_for(data, setup), PROBE_SIZE)
        image = f"{item.id}-object_ph_Niter{setup.config.num_epochs}.png"
        phase_png, phase_range = phase_image(outcome.result.object, mask)
        _write_atomic(_image_dir(out, settings) / image, phase_png)
        record: dict[str, Any] = {
            "id": item.id,
            "index": item.index,
            "sample_type": item.sample_type,
            "instrument": instrument,
            "planned_instrument": item.instrument,
            "planned_faults": list(item.faults),
            "injected_faults": list(faults),
            "faults": list(shown),
            "confirmed": confirmed,
            "artifacts": labels or [NO_ARTIFACTS],
            "letters": letters or ([NO_CHANGES] if not faults else []),
            "fixable": fixable,
            "seed": seed,
            "attempt": attempt,
            "dropped_attempts": dropped,
            "parameters": parameters_block(setup, scene),
            "config": setup.config.model_dump(),
            "metrics": {"clean": clean.metrics, "fault": outcome.metrics},
            "image": image,
            "seconds": round(time.perf_counter() - started, 2),
        }
        if settings.variation != "none":  # what re-rendering the phase later needs
            record["variant"] = sample_variant(item_now, seed, settings.variation).as_record()
            record["phase_range"] = phase_range
        _write_atomic(
            _unit_path(out, "detect", item.id), json.dumps(record, default=_json).encode()
        )
        return record
    record = {
        "id": item.id,
        "index": item.index,
        "sample_type": item.sample_type,
        "instrument": item.instrument,
        "planned_faults": list(item.faults),
        "failed": True,
        "dropped_attempts": dropped,
    }
    _write_atomic(_unit_path(out, "detect", item.id), json.dumps(record, default=_json).encode())
    logger.warning("sample %s: every attempt failed and it is left out", item.id)
    return record


def fix_gain(fault: float, fixed: float, clean: float) -> float:
    """How far a fix moved a metric from the faulted value back toward the clean one."""
    gap = fault - clean
    if abs(gap) < 1e-12:
        return 0.0
    return (fault - fixed) / gap


def verify_unit(
    record: Mapping[str, Any], settings: SimSettings, out: Path, device: str = "cpu"
) -> dict[str, Any]:
    """Apply the sample's fix letters to the same data, reconstruct, measure the gain."""
    from ptychobench.sim.experiment import measure, run_setup, scene_for

    item = PlanItem(record["index"], record["id"], record["sample_type"], record["instrument"], ())
    data, _, setup = build_setups(
        item, tuple(record["injected_faults"]), record["seed"], device, settings.variation
    )
    fixed = setup
    for letter in record["letters"]:
        fixed = apply_fix(fixed, letter, scene_for(data, setup))
    started = time.perf_counter()
    try:
        outcome, _ = run_setup(data, fixed, measure(data, setup))
        after: dict[str, float] | None = outcome.metrics
    except (RuntimeError, ValueError) as error:
        logger.info("fix of %s diverged: %s", record["id"], error)
        after = None
    before, clean = record["metrics"]["fault"], record["metrics"]["clean"]
    gains: dict[str, float] = {}
    for name, labels in record["confirmed"].items():
        for label in labels:
            for check in FAULTS[name].artifacts[label]:
                gain = (
                    -1.0
                    if after is None
                    else fix_gain(before[check.metric], after[check.metric], clean[check.metric])
                )
                gains[f"{label}: {check.metric}"] = round(gain, 3)
    helped = bool(gains) and all(g >= settings.min_fix_gain for g in gains.values())
    result = {
        "id": record["id"],
        "letters": record["letters"],
        "fixed_config": fixed.config.model_dump(),
        "metrics_fixed": after,
        "gains": gains,
        "helped": helped,
        "seconds": round(time.perf_counter() - started, 2),
    }
    _write_atomic(
        _unit_path(out, "verify", record["id"]), json.dumps(result, default=_json).encode()
    )
    return result


def _unit_path(out: Path, kind: str, sample: str) -> Path:
    folder = out / "work" / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{sample}.json"


def _load_unit(out: Path, kind: str, sample: str) -> dict[str, Any] | None:
    path = out / "work" / kind / f"{sample}.json"
    if not path.exists():
        return None
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("%s is damaged and is redone", path)
        return None
    return loaded


# --------------------------------------------------------------------- orchestration

Progress = Callable[[str, int, int], None]
"""Called with (phase, done, total) as units finish."""


def _quiet_ptychi() -> None:
    logging.getLogger("ptychi").setLevel(logging.ERROR)


def _init_worker() -> None:
    """A pool worker's set-up: one OpenMP thread (one worker per core) and death with
    the run that started it. Never run in the caller's process: there the thread limit
    would single-thread whatever it does next (a training run that opened a snapshot
    ran on one core)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:  # Linux: a worker dies with the run that started it (a killed run leaves none)
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    _quiet_ptychi()
    logging.getLogger().setLevel(logging.ERROR)


def _run_units(
    calls: list[tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]],
    workers: int,
    phase: str,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    total = len(calls)
    if progress:
        progress(phase, 0, total)
    if workers <= 1:
        _quiet_ptychi()
        for fn, args in calls:
            results.append(fn(*args))
            if progress:
                progress(phase, len(results), total)
        return results
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_init_worker
    ) as pool:
        futures = [pool.submit(fn, *args) for fn, args in calls]
        for future in as_completed(futures):
            results.append(future.result())
            if progress:
                progress(phase, len(results), total)
    return results


SETTINGS_FILE: Final = "sim-settings.json"
_ADDED_SETTINGS: Final = {"variation": "none", "standing_share": 0.0, "standing_rate": 0.75}
"""Settings added after a run could have been started: a run that did not record them
had their value here."""


def _recorded_settings(out: Path) -> dict[str, Any]:
    """The settings a run under ``out`` recorded, with those added since at their old value."""
    return {**_ADDED_SETTINGS, **json.loads((out / SETTINGS_FILE).read_text())}


def _claim(out: Path, settings: SimSettings) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / SETTINGS_FILE
    wanted = settings.model_dump(mode="json")
    if path.exists():
        found = _recorded_settings(out)
        if found != {**wanted, "generator": GENERATOR_VERSION} and found != wanted:
            changed = sorted(k for k in wanted if found.get(k) != wanted[k])
            raise ValueError(
                f"{out} holds a run with other settings ({', '.join(changed) or 'generator'}); "
                "resume with the same settings or choose another --out"
            )
    else:
        _write_atomic(
            path, json.dumps({**wanted, "generator": GENERATOR_VERSION}, indent=2).encode()
        )


def generate(
    settings: SimSettings,
    out: str | Path,
    workers: int = 1,
    progress: Progress | None = None,
    device: str = "auto",
) -> Dataset:
    """Make (or finish making) the dataset under ``out``; returns what was written.

    ``device`` is where Pty-chi runs: ``auto`` is CUDA when torch sees a GPU, else CPU
    (one torch thread per worker); the device used is recorded with every sample.
    """
    from ptychobench.sim.reconstruct import resolve_device

    out = Path(out)
    device = resolve_device(device)
    settings.check()
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    _claim(out, settings)
    plan, failed = _run_plan(settings, out, workers, progress, device)
    records = {item.id: _load_unit(out, "detect", item.id) for item in plan}
    samples = [_sample(records[item.id], out, settings) for item in plan]  # type: ignore[arg-type]
    train, test = split_samples(samples, settings.test_fraction, settings.seed)
    chosen = _recommendation(records, train, test, settings, out, workers, progress, device)  # type: ignore[arg-type]
    dataset = _dataset(samples, train, test, chosen, records, settings)  # type: ignore[arg-type]
    write_release(dataset, out)
    _write_summary(out, settings, plan, records, chosen, failed)  # type: ignore[arg-type]
    return dataset


def _run_plan(
    settings: SimSettings, out: Path, workers: int, progress: Progress | None, device: str
) -> tuple[list[PlanItem], list[str]]:
    """Run the detect units of the plan, and of replacements for samples that could not
    be made, until ``n`` samples exist. Returns the items that produced a sample and the
    ids of those that could not be made."""
    pending = make_plan(settings)
    made: list[PlanItem] = []
    left_out: list[str] = []
    used = 0
    phase = "reconstruct"
    while pending:
        todo = [item for item in pending if _load_unit(out, "detect", item.id) is None]
        _run_units(
            [(detect_unit, (item, settings, out, device)) for item in todo],
            workers,
            phase,
            progress,
        )
        phase = "replacements"
        failed: list[PlanItem] = []
        for item in pending:
            record = _load_unit(out, "detect", item.id)
            if record is None:
                raise RuntimeError(f"sample {item.id} has no result after its run")
            (failed if record.get("failed") else made).append(item)
        if used + len(failed) > settings.n // 2:
            raise RuntimeError(
                f"{used + len(failed)} samples could not be made; see {out}/work/detect"
            )
        left_out += [item.id for item in failed]
        pending = [replacement(settings, item, used + j) for j, item in enumerate(failed)]
        used += len(failed)
    made.sort(key=lambda item: item.index)
    return made, left_out


def _recommendation(
    records: Mapping[str, dict[str, Any]],
    train: list[Sample],
    test: list[Sample],
    settings: SimSettings,
    out: Path,
    workers: int,
    progress: Progress | None,
    device: str,
    verify: bool = True,
) -> dict[str, dict[str, Any]]:
    """Pick the recommendation samples of each side; verify fixes where asked (and
    ``verify``: a snapshot only reads the verifications already made).

    Returns sample id → verification (or ``{}`` when not verified), in file order.
    """
    quotas = {
        "train": round(len(train) * settings.recommendation_train_share),
        "test": round(len(test) * settings.recommendation_test_share),
    }
    chosen: dict[str, dict[str, Any]] = {}
    for side, samples in (("train", train), ("test", test)):
        candidates = [
            s.id for s in samples if records[s.id]["fixable"] and records[s.id]["letters"]
        ]
        rng = np.random.default_rng([settings.seed, 6, 0 if side == "train" else 1])
        rng.shuffle(candidates)
        taken: list[str] = []
        while len(taken) < quotas[side] and candidates:
            need = quotas[side] - len(taken)
            batch, candidates = (
                candidates[: need + need // 3 + 1],
                candidates[need + need // 3 + 1 :],
            )
            to_verify = [
                sid
                for sid in batch
                if verify
                and records[sid]["letters"] != [NO_CHANGES]
                and _verified_share(sid) < settings.verify_fraction
                and _load_unit(out, "verify", sid) is None
            ]
            _run_units(
                [(verify_unit, (records[sid], settings, out, device)) for sid in to_verify],
                workers,
                f"verify fixes ({side})",
                progress,
            )
            for sid in batch:
                if len(taken) == quotas[side]:
                    break
                check = (
                    _load_unit(out, "verify", sid)
                    if _verified_share(sid) < settings.verify_fraction
                    else None
                )
                if (
                    records[sid]["letters"] != [NO_CHANGES]
                    and check is not None
                    and not check["helped"]
                ):
                    continue
                taken.append(sid)
                chosen[sid] = check or {}
        if len(taken) < quotas[side]:
            logger.warning("recommendation %s: %d of %d samples", side, len(taken), quotas[side])
    return chosen


def snapshot(run: str | Path, dest: str | Path, ids: Iterable[str] | None = None) -> Dataset:
    """Write to ``dest`` a release of the samples a run under ``run`` has finished so far
    (or of those of ``ids``: a snapshot that a model was trained on is made again from
    its list, whatever the run has finished since).

    Training on a corpus need not wait for the hours its generation takes. What differs
    from the finished release: the split is drawn over the finished samples (so it is not
    the finished run's), and a recommendation sample whose fix is not verified yet keeps
    its recipe's letters (``verification`` is ``{}`` in ``samples.jsonl``; metadata.json
    counts the verified ones). A fix verified and found not to help is left out, as in
    the finished release. Nothing is reconstructed.
    """
    run, dest = Path(run), Path(dest)
    if not (run / SETTINGS_FILE).is_file():
        raise ValueError(f"{run} holds no simulator run (no {SETTINGS_FILE})")
    if dest.resolve() == run.resolve():
        raise ValueError("the snapshot needs its own directory (--out), not the run's")
    found = _recorded_settings(run)
    found.pop("generator", None)
    settings = SimSettings.model_validate(found)
    records = sorted(
        (
            record
            for path in sorted((run / "work" / "detect").glob("*.json"))
            if (record := _load_unit(run, "detect", path.stem)) and not record.get("failed")
        ),
        key=lambda record: record["index"],
    )
    if ids is not None:
        wanted = set(ids)
        missing = sorted(wanted - {record["id"] for record in records})
        if missing:
            raise ValueError(
                f"{len(missing)} of the listed samples are not finished under {run} "
                f"(first: {', '.join(missing[:3])})"
            )
        records = [record for record in records if record["id"] in wanted]
    if not records:
        raise ValueError(f"{run} has no finished samples yet")
    by_id = {record["id"]: record for record in records}
    plan = [
        PlanItem(
            index=r["index"],
            id=r["id"],
            sample_type=r["sample_type"],
            instrument=r["instrument"],
            faults=tuple(r["planned_faults"]),
        )
        for r in records
    ]
    samples = [_sample(record, run, settings) for record in records]
    train, test = split_samples(samples, settings.test_fraction, settings.seed)
    chosen = _recommendation(by_id, train, test, settings, run, 1, None, "cpu", verify=False)
    dataset = _dataset(samples, train, test, chosen, by_id, settings)
    write_release(dataset, dest)
    _write_summary(dest, settings, plan, by_id, chosen, [])
    return dataset


def _verified_share(sample: str) -> float:
    """A stable number in [0, 1) per sample: verified when below ``verify_fraction``."""
    return float(int(sample, 16) / 16 ** len(sample))


__all__ = [
    "GENERATOR_VERSION",
    "PAIRS",
    "PAPER_SIZES",
    "PlanItem",
    "SimSettings",
    "build_setups",
    "detect_unit",
    "fix_gain",
    "generate",
    "make_plan",
    "replacement",
    "sample_id",
    "snapshot",
    "verify_unit",
]
