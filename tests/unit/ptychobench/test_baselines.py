from __future__ import annotations

from ptychobench.baselines import example_vote
from ptychobench.data import Sample


def _s(i: int, *artifacts: str, options: tuple[str, ...] = ()) -> Sample:
    return Sample(id=str(i), artifacts=artifacts, options=options)


def test_majority_labels_win_ties_predict() -> None:
    examples = [
        _s(0, "Halo artifacts", "Line artifacts"),
        _s(1, "Halo artifacts"),
        _s(2, "Blurring"),
        _s(3, "Halo artifacts", "Blurring"),
    ]
    assert example_vote(examples, "detection") == ["Halo artifacts", "Blurring"]


def test_no_examples_or_no_winner_gives_the_null_label() -> None:
    assert example_vote([], "detection") == ["No obvious artifacts"]
    examples = [_s(i, options=(letter,)) for i, letter in enumerate("GKM")]
    assert example_vote(examples, "recommendation") == ["L"]


def test_null_label_loses_to_a_concrete_label() -> None:
    examples = [_s(0, options=("L",)), _s(1, options=("K",))]
    assert example_vote(examples, "recommendation") == ["K"]
