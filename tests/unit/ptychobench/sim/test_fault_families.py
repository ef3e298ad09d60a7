"""Each fault family, really reconstructed with Pty-chi: its metric signature shows
against a clean reconstruction of the same object, and its fix moves it back."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

from ptychobench.sim.faults import FAULTS, apply_fix
from ptychobench.sim.generate import PlanItem, build_setups, fix_gain

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("ptychi") is None, reason="ptychi is not installed"),
]

# (fault, sample type, instrument, seed, label it must cause); 2-ID-D is the fastest
FAMILIES = [
    ("too_few_iterations", "Siemens star", "2-ID-D", 1, "Blurring"),
    ("line_lag", "Siemens star", "2-ID-D", 1, "Line artifacts"),
    ("off_centre_patterns", "Integrated circuit", "Velociprobe", 2, "Phase ramp"),
    ("transposed_patterns", "Integrated circuit", "2-ID-D", 1, "No clear structure"),
    ("over_regularised", "Siemens star", "2-ID-D", 1, "Blurring"),
    ("probe_drift", "Siemens star", "2-ID-D", 1, "Non-uniform background"),
]


@pytest.mark.parametrize(("name", "sample_type", "instrument", "seed", "label"), FAMILIES)
def test_fault_shows_and_its_fix_helps(
    name: str, sample_type: str, instrument: str, seed: int, label: str
) -> None:
    from ptychobench.sim.experiment import measure, run_setup, scene_for

    fault = FAULTS[name]
    item = PlanItem(0, "test", sample_type, instrument, (name,))
    data, base, setup = build_setups(item, (name,), seed)
    clean, _ = run_setup(data, base)
    faulted, _ = run_setup(data, setup)
    checks = fault.artifacts[label]
    assert all(c.passes(faulted.metrics, clean.metrics) for c in checks), {
        c.metric: (faulted.metrics[c.metric], clean.metrics[c.metric]) for c in checks
    }
    fixed_setup = setup
    for letter in fault.fixes:
        fixed_setup = apply_fix(fixed_setup, letter, scene_for(data, setup))
    fixed, _ = run_setup(data, fixed_setup, measure(data, setup))
    for check in checks:
        gain = fix_gain(
            faulted.metrics[check.metric],
            fixed.metrics[check.metric],
            clean.metrics[check.metric],
        )
        assert gain >= 0.3, (check.metric, faulted.metrics, fixed.metrics)
    # the clean reconstruction itself does not carry the label
    assert not all(c.passes(clean.metrics, clean.metrics) for c in checks)
