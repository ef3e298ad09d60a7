"""The closed loop on simulated samples: does following a recommender's letters make the
reconstruction better?

For a faulted sample of a PtychoBench-Sim release the simulator's record keeps the seed,
the injected faults and the NRMSE (to the true object) of the faulted and of the clean
reconstruction. :func:`evaluate` rebuilds the faulted setup exactly as the generator did
(:func:`ptychobench.sim.generate.build_setups`, the same measured data), makes the
letters' changes (:func:`ptychobench.refine.apply_to_setup`, the simulator's
``apply_fix``), reconstructs once when anything changed, and scores

    gain = (NRMSE_fault − NRMSE_after) / (NRMSE_fault − NRMSE_clean)

(:func:`ptychobench.sim.generate.fix_gain`: the share of the gap to the clean
reconstruction that was closed; at least −1, a diverged reconstruction is −1); the
sample is *fixed* when gain ≥ the release's ``min_fix_gain`` (0.3, the simulator's own
rule). Baseline arms (:func:`baseline_letters`): ``none`` (no change), ``random`` (one
implemented letter, drawn from the seed and the sample id, so a resumed run draws the
same), ``constant`` (the best constant answer on the training split: what a model that
learnt only the answers' frequencies says), ``oracle`` (the letters of the injected
faults), ``rule`` (:func:`ptychobench.baselines.recommendation_rule`).

:func:`summarize` turns rows (one per sample and arm) into the report: fix rate with a
bootstrap interval, median gain, paired differences against ``none`` and ``oracle``,
rounds, reconstructions and seconds per round. ``benchmarks/closed_loop.py`` and the
gateway's benchmark runner both use it.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ptychobench.data import Sample
from ptychobench.labels import Task
from ptychobench.report.tables import estimate, md_table, number

if TYPE_CHECKING:
    from ptychobench.journal import Journal

BASELINE_ARMS: Final = ("none", "random", "constant", "oracle", "rule")
DIVERGED_GAIN: Final = -1.0
"""The gain of a reconstruction that failed, and the floor of every gain."""


class NotSimulatedError(ValueError):
    """The dataset has no simulation records (``samples.jsonl`` with seeds and faults), so
    its samples cannot be reconstructed again."""


def implemented_letters() -> tuple[str, ...]:
    """The letters the simulator has a change for (``apply_fix``), in order."""
    from ptychobench.refine import LETTER_TARGETS

    return tuple(sorted(LETTER_TARGETS))


@dataclass(frozen=True)
class LoopSample:
    """One faulted sample: as the recommendation task reads it, its simulator record, and
    the release's best constant answer (on its training split)."""

    sample: Sample
    record: Mapping[str, Any]
    constant: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.sample.id


@dataclass(frozen=True)
class Release:
    """The faulted samples of one split of a simulated release, and what scores them."""

    path: Path
    split: str
    samples: tuple[LoopSample, ...]
    variation: str
    min_fix_gain: float
    samples_sha256: str
    """Of ``samples.jsonl``: the seeds and metrics every gain is computed from."""


def open_release(path: str | Path, split: str = "test", limit: int | None = None) -> Release:
    """The faulted samples of the recommendation ``split`` of the release at ``path``, in
    the split's order (the first ``limit``). :class:`NotSimulatedError` when the release
    has no simulation records for them."""
    from ptychobench.data import open_dataset

    path = Path(path)
    listing = path / "samples.jsonl"
    settings_path = path / "sim-settings.json"
    if not listing.is_file() or not settings_path.is_file():
        raise NotSimulatedError(
            f"{path} is not a simulated release (no samples.jsonl and sim-settings.json): "
            "the closed loop reconstructs samples again from their seeds"
        )
    data = listing.read_bytes()
    records: dict[str, dict[str, Any]] = {}
    for line in data.decode().splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["id"]] = record
    settings = json.loads(settings_path.read_text())
    dataset = open_dataset(path)
    if split not in dataset.splits(Task.RECOMMENDATION):
        raise NotSimulatedError(f"{path} has no recommendation split {split!r}")
    constant = _train_constant(dataset)
    chosen: list[LoopSample] = []
    for sample in dataset.samples(Task.RECOMMENDATION, split):
        record = records.get(sample.id)
        if record is None or "seed" not in record or "injected_faults" not in record:
            raise NotSimulatedError(
                f"{path}: sample {sample.id} of the {split} split has no simulation record "
                "(seed and injected faults) in samples.jsonl"
            )
        if record["injected_faults"]:
            chosen.append(LoopSample(sample, record, constant))
    return Release(
        path=path,
        split=split,
        samples=tuple(chosen[:limit]),
        variation=str(settings.get("variation", "none")),
        min_fix_gain=float(settings.get("min_fix_gain", 0.3)),
        samples_sha256=hashlib.sha256(data).hexdigest(),
    )


def _train_constant(dataset: Any) -> tuple[str, ...]:
    """The letters a model that learnt only the answers' frequencies would give: the best
    constant answer (micro-F1) on the recommendation training split; none without one."""
    from ptychobench.baselines import best_constant
    from ptychobench.labels import OPTION_LETTERS

    if "train" not in dataset.splits(Task.RECOMMENDATION):
        return ()
    truths = [s.options for s in dataset.samples(Task.RECOMMENDATION, "train")]
    return best_constant(truths, OPTION_LETTERS).labels if truths else ()


def random_letter(seed: int, sample_id: str) -> str:
    """One implemented letter, drawn from ``seed`` and the sample id alone."""
    letters = implemented_letters()
    digest = hashlib.sha256(f"closed-loop\x1f{seed}\x1f{sample_id}".encode()).digest()
    return letters[int.from_bytes(digest[:8], "big") % len(letters)]


def baseline_letters(arm: str, item: LoopSample, seed: int) -> list[str]:
    """The letters of a baseline arm (:data:`BASELINE_ARMS`) for one sample."""
    from ptychobench.baselines import recommendation_rule

    if arm == "none":
        return []
    if arm == "random":
        return [random_letter(seed, item.id)]
    if arm == "constant":
        return list(item.constant)
    if arm == "oracle":
        return list(item.record["letters"])
    if arm == "rule":
        return recommendation_rule(item.sample.artifacts, item.sample.parameters)
    raise ValueError(f"unknown baseline arm {arm!r}; choose from {list(BASELINE_ARMS)}")


def sample_info(sample: Sample) -> dict[str, Any]:
    """The recommendation request's SAMPLE INFORMATION for a sample (the gateway's
    ``/v1/recommend`` ``sample``)."""
    from ptychobench.prompts import parse_parameters

    return {
        "package": sample.package or "pty-chi",
        "instrument": sample.instrument,
        "sample_type": sample.sample_type,
        "beam": sample.beam or "X-ray",
        "description": sample.caption_obj,
        "artifacts": list(sample.artifacts),
        "parameters": parse_parameters(sample.parameters),
    }


@dataclass(frozen=True)
class Evaluation:
    """What one arm's letters did to one sample."""

    letters: tuple[str, ...]
    applied: tuple[str, ...]
    skipped: Mapping[str, str]
    nrmse_fault: float
    nrmse_clean: float
    nrmse_after: float | None
    """None when the reconstruction failed (diverged)."""
    gain: float
    fixed: bool
    rounds: int
    reconstructions: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["letters"], row["applied"] = list(self.letters), list(self.applied)
        row["skipped"] = dict(self.skipped)
        return row


def evaluate(
    item: LoopSample,
    letters: Sequence[str],
    *,
    variation: str = "none",
    min_fix_gain: float = 0.3,
    device: str = "cpu",
) -> Evaluation:
    """Apply ``letters`` to the sample's faulted setup, reconstruct, and score the gain
    (nothing applicable: no reconstruction, the faulted NRMSE stands, gain 0)."""
    from ptychobench.refine import apply_to_setup
    from ptychobench.sim.experiment import measure, run_setup, scene_for
    from ptychobench.sim.generate import PlanItem, build_setups, fix_gain

    started = time.perf_counter()
    record = item.record
    plan = PlanItem(record["index"], record["id"], record["sample_type"], record["instrument"], ())
    faults = tuple(record["injected_faults"])
    data, _, setup = build_setups(plan, faults, int(record["seed"]), device, variation)
    fixed, applied, skipped = apply_to_setup(setup, letters, scene_for(data, setup))
    fault = float(record["metrics"]["fault"]["nrmse"])
    clean = float(record["metrics"]["clean"]["nrmse"])
    after: float | None = fault
    if applied:
        try:
            after = run_setup(data, fixed, measure(data, setup))[0].metrics["nrmse"]
        except (RuntimeError, ValueError):
            after = None
    gain = DIVERGED_GAIN
    if after is not None and math.isfinite(after):
        gain = max(fix_gain(fault, after, clean), DIVERGED_GAIN)
    return Evaluation(
        letters=tuple(letters),
        applied=applied,
        skipped=skipped,
        nrmse_fault=fault,
        nrmse_clean=clean,
        nrmse_after=after,
        gain=gain,
        fixed=gain >= min_fix_gain,
        rounds=1 if applied else 0,
        reconstructions=1 if applied else 0,
        seconds=time.perf_counter() - started,
    )


class ArmError(Exception):
    """An arm's letters could not be had for one sample (a served call that failed after
    its retries): the row is kept as an error, left out of the rates, and tried again
    when the run resumes."""


LettersFor = Callable[[str, LoopSample], tuple[Sequence[str], Mapping[str, Any]]]
"""(arm, sample) → the letters and what to keep beside them (e.g. the call's latency)."""


def run_arms(
    release: Release,
    arms: Sequence[str],
    journal: Journal,
    letters_for: LettersFor,
    *,
    evaluate_letters: Callable[..., Evaluation] = evaluate,
    on_row: Callable[[Mapping[str, Any]], None] | None = None,
) -> int:
    """Evaluate every (sample, arm) the journal does not hold yet, keeping each row the
    moment it is made; the number of rows made. Rows are keyed ``(id, arm)``."""
    made = 0
    for item in release.samples:
        for arm in arms:
            if (item.id, arm) in journal.rows:
                continue
            row: dict[str, Any] = {"id": item.id, "arm": arm}
            try:
                letters, meta = letters_for(arm, item)
            except ArmError as error:
                row["error"] = str(error)
            else:
                result = evaluate_letters(
                    item, letters, variation=release.variation, min_fix_gain=release.min_fix_gain
                )
                row.update(meta)
                row.update(result.to_dict())
            journal.append(row)
            made += 1
            if on_row is not None:
                on_row(row)
    return made


def row_key(row: Mapping[str, Any]) -> tuple[str, str]:
    """A closed-loop row's identity in a :class:`ptychobench.journal.Journal`."""
    return (str(row["id"]), str(row["arm"]))


# ---------------------------------------------------------------------------- report


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _paired(
    rows: Sequence[Mapping[str, Any]],
    other: Sequence[Mapping[str, Any]],
    n_resamples: int,
    seed: int,
) -> dict[str, Any] | None:
    """Fix rate of ``rows`` minus ``other``'s on the samples both have (each row paired
    with ``other``'s row of its sample: a model run at several seeds meets the same
    baseline row at each)."""
    from ptychobench.bootstrap import paired_bootstrap_mean

    by_id = {r["id"]: r for r in other}
    pairs = [(r, by_id[r["id"]]) for r in rows if r["id"] in by_id]
    if not pairs:
        return None
    a = [float(mine["fixed"]) for mine, _ in pairs]
    b = [float(theirs["fixed"]) for _, theirs in pairs]
    result = paired_bootstrap_mean(a, b, n_resamples, seed)
    return {
        "n": len(pairs),
        "delta": result.point_diff,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "p_value": result.p_value,
    }


def summarize(
    rows: Sequence[Mapping[str, Any]],
    arms: Sequence[str],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Arm → n (rows scored), errors (rows that failed: left out of every rate), fix rate
    and its 95 % bootstrap interval, median gain, the paired fix-rate difference (and
    interval, p) against ``none`` and ``oracle`` on the samples both have, mean rounds,
    reconstructions, and mean seconds per round (recommending included). An arm may
    have several rows of a sample (seeds); each is an item."""
    from ptychobench.bootstrap import bootstrap_mean

    scored: dict[str, list[Mapping[str, Any]]] = {arm: [] for arm in arms}
    errors = dict.fromkeys(arms, 0)
    for row in rows:
        if row["arm"] not in scored:
            continue
        if row.get("error") is not None:
            errors[row["arm"]] += 1
        else:
            scored[row["arm"]].append(row)
    summary: dict[str, dict[str, Any]] = {}
    for arm in arms:
        got = scored[arm]
        fixed = [float(r["fixed"]) for r in got]
        rate = bootstrap_mean(fixed, n_resamples, seed) if fixed else None
        round_seconds = [
            float(r["seconds"]) + float(r.get("recommend_s") or 0.0) for r in got if r["rounds"]
        ]
        summary[arm] = {
            "n": len(got),
            "errors": errors[arm],
            "fix_rate": rate.point if rate else None,
            "fix_rate_ci": [rate.ci_low, rate.ci_high] if rate else None,
            "median_gain": _median([float(r["gain"]) for r in got]),
            "vs_none": _paired(got, scored.get("none", []), n_resamples, seed),
            "vs_oracle": _paired(got, scored.get("oracle", []), n_resamples, seed),
            "rounds": statistics.mean(r["rounds"] for r in got) if got else None,
            "reconstructions": sum(int(r["reconstructions"]) for r in got),
            "seconds_per_round": statistics.mean(round_seconds) if round_seconds else None,
        }
    return summary


def _num(value: float | None, form: str) -> str:
    return number(value, form, missing="–")


def _p(value: float) -> str:
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"


def _delta(paired: Mapping[str, Any] | None) -> str:
    if paired is None:
        return "–"
    change = estimate(paired["delta"], paired["ci_low"], paired["ci_high"], "+.2f")
    return f"{change} {_p(paired['p_value'])}"


def render_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """The summary as a Markdown table, one row an arm."""
    header = [
        "arm",
        "n",
        "errors",
        "fix rate [95 % CI]",
        "median gain",
        "Δ vs none [CI] p",
        "Δ vs oracle [CI] p",
        "rounds",
        "recons",
        "s/round",
    ]
    rows: list[list[object]] = []
    for arm, s in summary.items():
        ci = s["fix_rate_ci"]
        rate = "–" if ci is None else estimate(s["fix_rate"], ci[0], ci[1], ".2f")
        rows.append(
            [
                arm,
                s["n"],
                s["errors"],
                rate,
                _num(s["median_gain"], "+.2f"),
                _delta(s["vs_none"]),
                _delta(s["vs_oracle"]),
                _num(s["rounds"], ".2f"),
                s["reconstructions"],
                _num(s["seconds_per_round"], ".1f"),
            ]
        )
    lines = md_table(header, rows)
    return "\n".join(lines)


__all__ = [
    "BASELINE_ARMS",
    "DIVERGED_GAIN",
    "ArmError",
    "Evaluation",
    "LoopSample",
    "NotSimulatedError",
    "Release",
    "baseline_letters",
    "evaluate",
    "implemented_letters",
    "open_release",
    "random_letter",
    "render_table",
    "row_key",
    "run_arms",
    "sample_info",
    "summarize",
]
