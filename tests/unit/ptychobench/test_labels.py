from __future__ import annotations

import pytest

from ptychobench.labels import (
    ARTIFACT_LABELS,
    NO_ARTIFACTS,
    OPTION_BY_TEXT,
    OPTION_LETTERS,
    OPTIONS,
    Task,
    canonical_order,
    describe,
    null_label,
    vocabulary,
)


def test_artifact_labels_are_the_papers_twelve_in_order() -> None:
    assert ARTIFACT_LABELS[:3] == ("Grid artifacts", "Halo artifacts", "Line artifacts")
    assert ARTIFACT_LABELS[-2:] == ("Blurring", NO_ARTIFACTS)
    assert len(set(ARTIFACT_LABELS)) == 12


def test_options_are_a_to_x_and_invert() -> None:
    assert "".join(OPTION_LETTERS) == "ABCDEFGHIJKLMNOPQRSTUVWX"
    assert OPTIONS["K"] == "Increase the number of iterations"
    assert OPTIONS["L"] == "No changes needed"
    assert all(OPTION_BY_TEXT[text] == letter for letter, text in OPTIONS.items())


@pytest.mark.parametrize(
    ("task", "size", "null"),
    [(Task.DETECTION, 12, NO_ARTIFACTS), ("recommendation", 24, "L")],
)
def test_vocabulary_and_null_label(task: Task | str, size: int, null: str) -> None:
    assert len(vocabulary(task)) == size
    assert null_label(task) == null
    assert null in vocabulary(task)


def test_canonical_order_sorts_dedupes_and_refuses_unknown() -> None:
    assert canonical_order(["K", "G", "K"], "recommendation") == ["G", "K"]
    assert canonical_order(["Blurring", "Grid artifacts"], Task.DETECTION) == [
        "Grid artifacts",
        "Blurring",
    ]
    with pytest.raises(ValueError, match="Halo"):
        canonical_order(["Halo"], Task.DETECTION)


def test_describe_gives_option_texts() -> None:
    assert describe(["G"], "recommendation") == [("G", "Enable position correction")]
    assert describe(["Phase ramp"], "detection") == [("Phase ramp", "Phase ramp")]
