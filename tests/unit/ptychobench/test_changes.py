"""Every option letter has a concrete Pty-chi change, and every option path exists."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

from ptychobench.changes import CHANGES, changes_for
from ptychobench.labels import OPTIONS


def test_every_letter_has_an_entry_and_only_no_changes_is_empty() -> None:
    assert set(CHANGES) == set(OPTIONS)
    assert [letter for letter, changes in CHANGES.items() if not changes] == ["L"]


def test_changes_for_is_json_ready_and_refuses_unknown_letters() -> None:
    found = changes_for(["G", "K"])
    assert found["K"] == [
        {
            "target": "option",
            "path": "reconstructor_options.num_epochs",
            "op": "multiply",
            "value": 2,
            "note": "",
        }
    ]
    assert found["G"][0]["path"] == "probe_position_options.optimizable"
    with pytest.raises(ValueError, match="'Z' is not an option letter"):
        changes_for(["Z"])


@pytest.mark.skipif(find_spec("ptychi") is None, reason="the sim extra is not installed")
def test_every_option_path_exists_in_ptychis_lsqml_options() -> None:
    from ptychobench.sim.reconstruct import load_ptychi

    api, _ = load_ptychi()
    options = api.LSQMLOptions()
    for letter, changes in CHANGES.items():
        for change in changes:
            if change.target != "option":
                continue
            owner = options
            *parents, leaf = change.path.split(".")
            for part in parents:
                owner = getattr(owner, part)
            assert hasattr(owner, leaf), f"{letter}: {change.path}"
    assert api.NoiseModels.GAUSSIAN
    assert api.BatchingModes.COMPACT
    assert api.BatchingModes.UNIFORM
