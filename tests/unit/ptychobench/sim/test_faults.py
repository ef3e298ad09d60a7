"""The fault recipes: labels, fixes and the parameters a user would see."""

from __future__ import annotations

import numpy as np
import pytest

from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS, OPTION_LETTERS
from ptychobench.sim.faults import (
    FAULTS,
    Check,
    Scene,
    Setup,
    apply_fix,
    clean_config,
    parameters_block,
)
from ptychobench.sim.generate import PAIRS
from ptychobench.sim.instruments import INSTRUMENTS

SCENE = Scene("Integrated circuit", INSTRUMENTS["2-ID-D"], 49, False)


def _faulted(name: str, seed: int = 0) -> tuple[Setup, Setup]:
    base = Setup(config=clean_config(SCENE.instrument, SCENE.n_positions))
    return base, FAULTS[name].apply(base, SCENE, np.random.default_rng(seed))


def test_there_are_enough_recipes_with_real_labels_and_letters() -> None:
    assert len(FAULTS) >= 10
    for fault in FAULTS.values():
        assert fault.artifacts, fault.name
        assert set(fault.artifacts) <= set(ARTIFACT_LABELS) - {NO_ARTIFACTS}
        assert set(fault.fixes) <= set(OPTION_LETTERS) - {"L"}
        assert all(checks for checks in fault.artifacts.values())
    fixed = {letter for fault in FAULTS.values() for letter in fault.fixes}
    assert {"K", "G", "M", "Q", "T", "J", "P", "U", "N", "H"} <= fixed
    caused = {label for fault in FAULTS.values() for label in fault.artifacts}
    assert caused == set(ARTIFACT_LABELS) - {NO_ARTIFACTS}  # every label has a cause


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_recipe_changes_the_setup_and_its_fixes_change_it_back(name: str) -> None:
    base, faulted = _faulted(name)
    assert faulted != base
    fixed = faulted
    for letter in FAULTS[name].fixes:
        fixed = apply_fix(fixed, letter, SCENE)
        assert fixed != faulted
    assert fixed.sim == faulted.sim  # a fix changes the reconstruction, not the experiment


def test_parameters_say_what_the_fix_will_change() -> None:
    cases = {
        "too_few_iterations": ("iterations", "K"),
        "position_errors": ("position correction", "G"),
        "over_regularised": ("regularization", "P"),
        "single_probe_mode": ("probe modes", "J"),
        "poisson_noise_model": ("noise model", "U"),
        "one_batch": ("batch size", "N"),
        "probe_drift": ("OPR modes", "T"),
    }
    base = Setup(config=clean_config(SCENE.instrument, SCENE.n_positions))
    for name, (key, letter) in cases.items():
        _, faulted = _faulted(name)
        shown = parameters_block(faulted, SCENE)[key]
        after = parameters_block(apply_fix(faulted, letter, SCENE), SCENE)[key]
        assert shown != after, name
        if name in {"over_regularised", "poisson_noise_model", "one_batch"}:
            assert after == parameters_block(base, SCENE)[key], name  # back to the default
    _, few = _faulted("too_few_iterations")
    assert int(parameters_block(few, SCENE)["iterations"]) <= 4
    assert parameters_block(_faulted("position_errors")[1], SCENE)["position correction"] == "off"


def test_checks_compare_with_the_clean_reconstruction() -> None:
    above = Check("noise_power", "above", 2.0, 0.1, floor=0.5)
    assert above.passes({"noise_power": 0.6}, {"noise_power": 0.2})
    assert not above.passes({"noise_power": 0.45}, {"noise_power": 0.1})  # under the floor
    assert not above.passes({"noise_power": 0.6}, {"noise_power": 0.3})  # under 2×clean + 0.1
    below = Check("sharpness", "below", 0.6)
    assert below.passes({"sharpness": 0.5}, {"sharpness": 1.0})
    assert not below.passes({"sharpness": 0.7}, {"sharpness": 1.0})
    assert above.describe() == "noise_power > 2×clean + 0.1 and noise_power > 0.5"


def test_recipes_that_need_raster_scans_or_structure_say_so() -> None:
    fermat = Scene("Integrated circuit", INSTRUMENTS["APS-2IDE-XFM"], 60, False)
    assert not FAULTS["line_lag"].applies_to(fermat)
    assert FAULTS["line_lag"].applies_to(SCENE)
    assert not FAULTS["line_lag"].applies_to(
        Scene("E. coli in starch", SCENE.instrument, 49, False)
    )


def test_pairs_name_known_recipes_that_touch_different_knobs() -> None:
    for first, second in PAIRS:
        assert first in FAULTS
        assert second in FAULTS
        _, one = _faulted(first)
        both = FAULTS[second].apply(one, SCENE, np.random.default_rng(1))
        _, alone = _faulted(second, 1)
        changed_one = {
            k
            for k, v in one.config.model_dump().items()
            if v != getattr(clean_config(SCENE.instrument, 49), k)
        }
        changed_two = {
            k
            for k, v in alone.config.model_dump().items()
            if v != getattr(clean_config(SCENE.instrument, 49), k)
        }
        assert not changed_one & changed_two, (first, second)
        assert not set(one.sim) & set(alone.sim), (first, second)
        assert both != one


def test_an_unknown_fix_is_an_error() -> None:
    base, _ = _faulted("one_batch")
    with pytest.raises(ValueError, match="option W"):
        apply_fix(base, "W", SCENE)


def test_the_documentation_lists_every_recipe() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[4] / "docs" / "ptychobench-sim.md").read_text()
    for name in FAULTS:
        assert f"`{name}`" in doc, name
