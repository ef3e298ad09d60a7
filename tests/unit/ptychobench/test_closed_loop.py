"""The closed loop on simulated samples: which samples, the baseline arms' letters, the
run's bookkeeping (resumed after a kill with the same letters and no row twice), the
summary, and (slow) one real reconstruction against the simulator's own verification."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from ptychobench.closed_loop import (
    BASELINE_ARMS,
    ArmError,
    Evaluation,
    LoopSample,
    NotSimulatedError,
    baseline_letters,
    evaluate,
    implemented_letters,
    open_release,
    random_letter,
    row_key,
    run_arms,
    summarize,
)
from ptychobench.journal import Journal

ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"


def test_the_release_gives_the_faulted_test_samples_in_split_order() -> None:
    release = open_release(DATASET)
    split = json.loads(
        (DATASET / "annotations/parameter_recommendation_split/test.json").read_text()
    )
    ids = [s["metadata"]["id"] for s in split]
    assert [s.id for s in release.samples] == [
        i for i in ids if i in {s.id for s in release.samples}
    ]
    assert len(release.samples) == 40  # of 44: the clean ones have nothing to fix
    assert all(s.record["injected_faults"] for s in release.samples)
    assert release.min_fix_gain == 0.3
    assert len(release.samples_sha256) == 64
    assert [s.id for s in open_release(DATASET, limit=3).samples] == [
        s.id for s in release.samples[:3]
    ]


def test_a_release_without_simulation_records_is_refused(tmp_path: Path) -> None:
    shutil.copytree(DATASET / "annotations", tmp_path / "annotations")
    with pytest.raises(NotSimulatedError, match="not a simulated release"):
        open_release(tmp_path)


def test_the_random_letter_depends_on_seed_and_id_only() -> None:
    ids = [s.id for s in open_release(DATASET).samples]
    drawn = [random_letter(0, i) for i in ids]
    assert drawn == [random_letter(0, i) for i in reversed(ids)][::-1]
    assert set(drawn) <= set(implemented_letters())
    assert len(set(drawn)) > 3  # spread over the letters
    assert drawn != [random_letter(1, i) for i in ids]


def test_baseline_arms() -> None:
    item = open_release(DATASET, limit=1).samples[0]
    assert baseline_letters("none", item, 0) == []
    assert baseline_letters("oracle", item, 0) == list(item.record["letters"])
    assert baseline_letters("random", item, 7) == [random_letter(7, item.id)]
    assert baseline_letters("rule", item, 0)  # the rule always says something
    # PtychoBench-Sim's training answers: "K" (more iterations) and "L" (no change) make
    # the best constant answer there
    assert baseline_letters("constant", item, 0) == ["K", "L"]
    with pytest.raises(ValueError, match="unknown baseline arm"):
        baseline_letters("sft", item, 0)


class Killed(BaseException):
    """What a kill looks like to the loop: nothing after it runs."""


def scripted(kill_after: int | None = None) -> Any:
    """An evaluate that scores letters by a fixed rule (the reconstruction is not what
    these tests are about), and is killed after ``kill_after`` calls."""
    calls: list[str] = []

    def fake(item: LoopSample, letters: Sequence[str], **_: Any) -> Evaluation:
        if kill_after is not None and len(calls) == kill_after:
            raise Killed
        calls.append(item.id)
        gain = 1.0 if list(letters) == list(item.record["letters"]) else 0.0
        return Evaluation(
            tuple(letters),
            tuple(letters),
            {},
            1.0,
            0.5,
            None,
            gain,
            gain >= 0.3,
            int(bool(letters)),
            int(bool(letters)),
            0.0,
        )

    fake.calls = calls  # type: ignore[attr-defined]
    return fake


def baselines(arm: str, item: LoopSample) -> tuple[list[str], Mapping[str, Any]]:
    return baseline_letters(arm, item, 0), {}


def test_a_killed_run_resumes_with_the_same_rows_and_none_twice(tmp_path: Path) -> None:
    release = open_release(DATASET, limit=3)
    arms = list(BASELINE_ARMS)
    whole = tmp_path / "whole"
    with Journal(whole, {"n": 3}, row_key) as journal:
        assert run_arms(release, arms, journal, baselines, evaluate_letters=scripted()) == 15
    killed = tmp_path / "killed"
    with Journal(killed, {"n": 3}, row_key) as journal, pytest.raises(Killed):
        run_arms(release, arms, journal, baselines, evaluate_letters=scripted(kill_after=5))
    resumed = scripted()
    with Journal(killed, {"n": 3}, row_key) as journal:
        assert len(journal.rows) == 5
        assert run_arms(release, arms, journal, baselines, evaluate_letters=resumed) == 10
    assert len(resumed.calls) == 10
    rows = [json.loads(line) for line in (killed / "rows.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (whole / "rows.jsonl").read_text().splitlines()]
    assert sorted(map(row_key, rows)) == sorted(map(row_key, expected))
    assert len(rows) == len(set(map(row_key, rows))) == 15
    assert sorted(rows, key=row_key) == sorted(expected, key=row_key)


def test_a_failed_call_is_an_error_row_left_out_of_the_rates(tmp_path: Path) -> None:
    release = open_release(DATASET, limit=2)
    failing = {release.samples[1].id}

    def served(arm: str, item: LoopSample) -> tuple[list[str], Mapping[str, Any]]:
        if arm == "sft" and item.id in failing:
            raise ArmError("503 engine unavailable")
        if arm == "sft":
            return list(item.record["letters"]), {"recommend_s": 2.0}
        return baselines(arm, item)

    arms = [*BASELINE_ARMS, "sft"]
    with Journal(tmp_path, {}, row_key) as journal:
        run_arms(release, arms, journal, served, evaluate_letters=scripted())
        summary = summarize(list(journal.rows.values()), arms, n_resamples=200)
    assert summary["sft"]["n"] == 1
    assert summary["sft"]["errors"] == 1
    assert summary["sft"]["fix_rate"] == 1.0
    assert summary["sft"]["vs_none"]["n"] == 1
    assert summary["sft"]["seconds_per_round"] == 2.0  # the call is part of the round
    failing.clear()  # the engine is back: the resumed run asks again
    with Journal(tmp_path, {}, row_key) as journal:
        assert run_arms(release, arms, journal, served, evaluate_letters=scripted()) == 1
        summary = summarize(list(journal.rows.values()), arms, n_resamples=200)
    assert (summary["sft"]["n"], summary["sft"]["errors"]) == (2, 0)


def test_summary_rates_and_paired_differences() -> None:
    def row(i: int, arm: str, fixed: bool, gain: float) -> dict[str, Any]:
        applied = arm != "none"
        return {
            "id": str(i),
            "arm": arm,
            "fixed": fixed,
            "gain": gain,
            "rounds": int(applied),
            "reconstructions": int(applied),
            "seconds": 3.0,
        }

    rows = [row(i, "none", False, 0.0) for i in range(10)]
    rows += [row(i, "oracle", True, 0.8) for i in range(10)]
    rows += [row(i, "rule", i < 6, 0.5 if i < 6 else 0.1) for i in range(10)]
    summary = summarize(rows, ["none", "oracle", "rule"], n_resamples=2000)
    rule = summary["rule"]
    assert rule["fix_rate"] == pytest.approx(0.6)
    assert rule["fix_rate_ci"][0] < 0.6 < rule["fix_rate_ci"][1]
    assert rule["vs_none"]["delta"] == pytest.approx(0.6)
    assert rule["vs_none"]["p_value"] < 0.05
    assert rule["vs_oracle"]["delta"] == pytest.approx(-0.4)
    assert rule["median_gain"] == pytest.approx(0.5)
    assert (rule["rounds"], rule["reconstructions"], rule["seconds_per_round"]) == (1, 10, 3.0)
    assert summary["none"]["seconds_per_round"] is None
    assert summary["oracle"]["vs_oracle"]["p_value"] == 1.0


@pytest.mark.slow
def test_a_real_reconstruction_matches_the_simulators_verification() -> None:
    release = open_release(DATASET)
    item = next(s for s in release.samples if s.id == "18bf8354")  # P, ~2 s on one core
    none = evaluate(item, [])
    assert (none.gain, none.reconstructions, none.fixed) == (0.0, 0, False)
    oracle = evaluate(item, baseline_letters("oracle", item, 0))
    assert oracle.applied == ("P",)
    assert oracle.reconstructions == 1
    assert oracle.nrmse_after == pytest.approx(
        item.record["verification"]["metrics_fixed"]["nrmse"], rel=0.02
    )
    assert oracle.fixed
    skipped = evaluate(item, ["L", "A"])
    assert skipped.applied == ()
    assert set(skipped.skipped) == {"L", "A"}
    assert skipped.reconstructions == 0
