"""The closed loop's acceptance rule and letter application (pure)."""

from __future__ import annotations

import pytest

from ptychobench.refine import (
    AcceptanceRule,
    Evidence,
    apply_letters,
    judge,
    options_diff,
    targeted_artifacts,
    update_parameters,
)
from ptychobench.sim.reconstruct import ReconConfig

BLURRED = {"sharpness": 0.10, "phase_contrast": 0.20, "noise_power": 0.02, "residues": 0.0}


def test_a_fix_that_sharpens_without_hurting_the_fit_is_accepted() -> None:
    before = Evidence(1.0, BLURRED, ["Blurring", "Low contrast"], "gaussian")
    after = Evidence(0.9, {**BLURRED, "sharpness": 0.25, "phase_contrast": 0.25}, ["Blurring"])
    verdict = judge(before, after, ["K"])
    assert verdict.accepted
    assert verdict.targeted == ("Blurring", "Low contrast")
    assert verdict.loss_change == pytest.approx(-0.1)
    by_label = {c.label: c for c in verdict.checks}
    assert by_label["Low contrast"].gone
    assert by_label["Blurring"].gain == pytest.approx(0.15 / 0.9)  # of the headroom


def test_a_rising_loss_rejects_whatever_the_metrics_say() -> None:
    before = Evidence(1.0, BLURRED, ["Blurring"], "gaussian")
    after = Evidence(1.06, {**BLURRED, "sharpness": 0.2}, [], "gaussian")
    verdict = judge(before, after, ["K"])
    assert not verdict.accepted
    assert not verdict.loss_ok
    assert "loss rose" in verdict.reasons[0]
    assert judge(before, after, ["K"], AcceptanceRule(max_loss_rise=0.1)).accepted


def test_a_metric_that_moved_too_little_or_the_wrong_way_rejects() -> None:
    before = Evidence(1.0, BLURRED, ["Blurring"], "gaussian")
    small = Evidence(1.0, {**BLURRED, "sharpness": 0.15}, ["Blurring"], "gaussian")
    worse = Evidence(1.0, {**BLURRED, "sharpness": 0.05}, ["Blurring"], "gaussian")
    assert not judge(before, small, ["K"]).accepted
    assert not judge(before, worse, ["K"]).accepted
    assert judge(before, worse, ["K"]).checks[0].gain == pytest.approx(-0.05 / 0.9)


def test_an_artifact_without_a_metric_must_be_gone() -> None:
    before = Evidence(1.0, BLURRED, ["Local distortion"], "gaussian")
    assert not judge(before, Evidence(0.8, BLURRED, ["Local distortion"]), ["G"]).accepted
    assert judge(before, Evidence(0.8, BLURRED, ["No obvious artifacts"]), ["G"]).accepted


def test_losses_of_different_noise_models_are_not_compared() -> None:
    before = Evidence(50.0, BLURRED, ["Noisy artifacts"], "poisson")
    after = Evidence(80.0, {**BLURRED, "noise_power": 0.01}, ["Noisy artifacts"], "gaussian")
    verdict = judge(before, after, ["U"])
    assert verdict.accepted
    assert verdict.loss_change is None
    assert "not comparable" in verdict.reasons[0]


def test_a_metric_near_zero_needs_a_change_above_its_floor() -> None:
    before = Evidence(1.0, {"residues": 0.0}, ["Singularity artifacts"], "gaussian")
    after = Evidence(1.0, {"residues": 0.005}, ["Singularity artifacts"], "gaussian")
    assert not judge(before, after, ["K"]).accepted  # noise, not a change


def test_the_targets_are_what_the_letters_are_meant_to_remove() -> None:
    seen = ["Halo artifacts", "Phase ramp", "No obvious artifacts"]
    assert targeted_artifacts(["M"], seen) == ("Phase ramp",)
    assert targeted_artifacts(["A"], seen) == ("Halo artifacts", "Phase ramp")


def test_letters_are_applied_as_the_simulator_applies_its_fixes() -> None:
    config = ReconConfig(num_epochs=4, noise_model="poisson", batch_size=100)
    applied = apply_letters(
        config, [], ["K", "U", "M", "M", "L", "A"], n_positions=64, sample_type="Siemens star"
    )
    assert applied.applied == ("K", "U", "M")
    assert applied.preprocess == ("recenter",)
    assert applied.skipped["M"] == "already in effect"
    assert set(applied.skipped) == {"L", "A", "M"}
    assert options_diff(config, applied.config) == {
        "num_epochs": [4, 60],
        "noise_model": ["poisson", "gaussian"],
    }
    listing = update_parameters({"iterations": "4", "scan": "spiral"}, applied.config)
    assert listing == {"iterations": "60", "scan": "spiral"}
