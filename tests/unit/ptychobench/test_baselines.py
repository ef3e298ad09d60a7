from __future__ import annotations

from collections.abc import Sequence

import pytest

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


# ----------------------------------------------------------------------- best constant


def _brute_force(truths: Sequence[tuple[str, ...]], vocab: tuple[str, ...]) -> float:
    from itertools import combinations

    from ptychobench.metrics import score

    return max(
        score(truths, [subset] * len(truths), vocab).micro.f1
        for size in range(1, len(vocab) + 1)
        for subset in combinations(vocab, size)
    )


def test_best_constant_can_be_a_two_label_set() -> None:
    from ptychobench.baselines import best_constant
    from ptychobench.metrics import score

    vocab = ("a", "b", "c", "d")
    truths = [("a", "b"), ("a", "b"), ("a",), ("b", "c"), ("a", "b", "d")]
    found = best_constant(truths, vocab)
    assert found.labels == ("a", "b")
    # tp 8, fp 2, fn 2 -> 16 / 20
    assert found.micro_f1 == pytest.approx(0.8)
    assert found.micro_f1 == pytest.approx(score(truths, [("a", "b")] * 5, vocab).micro.f1)
    assert found.micro_f1 == pytest.approx(_brute_force(truths, vocab))
    assert (found.n_items, found.tied) == (5, 0)


def test_best_constant_matches_an_exhaustive_search() -> None:
    import random

    from ptychobench.baselines import best_constant

    rng = random.Random(7)
    vocab = tuple("abcdef")
    for _ in range(40):
        truths = [
            tuple(sorted(rng.sample(vocab, rng.randint(0, 3)))) for _ in range(rng.randint(1, 9))
        ]
        found = best_constant(truths, vocab)
        assert found.micro_f1 == pytest.approx(_brute_force(truths, vocab)), truths


def test_best_constant_ties_go_to_the_smaller_set() -> None:
    from ptychobench.baselines import best_constant

    # x on every item and a, b, c once each: {x} = 6/9, {x, a} = 8/12, {x, a, b} =
    # 10/15 and all four = 12/18 all score 2/3 exactly; the smallest set wins
    truths = [("a", "x"), ("b", "x"), ("c", "x")]
    found = best_constant(truths, ("a", "b", "c", "x"))
    assert found.labels == ("x",)
    assert found.micro_f1 == pytest.approx(2 / 3)
    assert found.micro_f1 == pytest.approx(_brute_force(truths, ("a", "b", "c", "x")))
    # the other optima: three pairs {x, ?}, three triples and the whole vocabulary
    assert found.tied == 7
    # equally frequent labels that both belong in the answer come in vocabulary order
    found = best_constant([("b", "c"), ("c", "b"), ("a",)], ("a", "c", "b"))
    assert found.labels == ("c", "b")
    assert found.tied == 0


def test_best_constant_of_null_labels_and_of_no_labels() -> None:
    from ptychobench.baselines import best_constant
    from ptychobench.labels import ARTIFACT_LABELS

    truths = [("No obvious artifacts",)] * 3 + [("Halo artifacts",)]
    assert best_constant(truths, ARTIFACT_LABELS).labels == ("No obvious artifacts",)
    empty = best_constant([(), ()], ("x", "y"))
    assert (empty.labels, empty.micro_f1, empty.tied) == (("x",), 0.0, 2)
    with pytest.raises(ValueError, match="no items"):
        best_constant([], ("x",))


# ----------------------------------------------------------------------- simple rules

PARAMETERS = """engine: LSQML
iterations: 400
batch size: 12
position correction: off
OPR modes: 0
probe update starts at iteration: 0"""


def test_sample_type_vote_uses_the_training_samples_of_the_type() -> None:
    from ptychobench.baselines import sample_type_vote

    train = [
        Sample(id="1", sample_type="Zeolite", artifacts=("Halo artifacts", "Line artifacts")),
        Sample(id="2", sample_type="Zeolite", artifacts=("Halo artifacts",)),
        Sample(id="3", sample_type="Integrated circuit", artifacts=("Grid artifacts",)),
        Sample(id="4", sample_type="Integrated circuit", artifacts=("Grid artifacts",)),
    ]
    assert sample_type_vote("Zeolite", train, "detection") == [
        "Halo artifacts",
        "Line artifacts",
    ]
    assert sample_type_vote("Integrated circuit", train, "detection") == ["Grid artifacts"]
    # an unseen type falls back on the whole pool: Grid 2/4 and Halo 2/4 win
    assert sample_type_vote("Battery", train, "detection") == ["Grid artifacts", "Halo artifacts"]
    assert sample_type_vote("Zeolite", [], "detection") == ["No obvious artifacts"]


def test_recommendation_rule_maps_artifacts_by_their_physics() -> None:
    from ptychobench.baselines import recommendation_rule

    assert recommendation_rule(["Local distortion"], PARAMETERS) == ["G"]
    assert recommendation_rule(["Phase ramp"], PARAMETERS) == ["M"]
    assert recommendation_rule(["Line artifacts"], PARAMETERS) == ["T"]
    assert recommendation_rule(["Halo artifacts", "Blurring"], PARAMETERS) == ["J"]
    assert recommendation_rule(["Noisy artifacts"], PARAMETERS) == ["K"]
    assert recommendation_rule(["No clear structure"], PARAMETERS) == ["K", "Q"]
    assert recommendation_rule(["Local distortion", "Phase ramp"], PARAMETERS) == ["G", "M"]
    assert recommendation_rule([], PARAMETERS) == ["L"]
    assert recommendation_rule(["No obvious artifacts"], PARAMETERS) == ["L"]


def test_recommendation_rule_reads_what_is_already_set() -> None:
    from ptychobench.baselines import recommendation_rule

    on = PARAMETERS.replace("position correction: off", "position correction: on")
    assert recommendation_rule(["Local distortion"], on) == ["K"]  # nothing left to enable
    opr = PARAMETERS.replace("OPR modes: 0", "OPR modes: 1")
    assert recommendation_rule(["Line artifacts"], opr) == ["I"]
    few = PARAMETERS.replace("iterations: 400", "iterations: 9")
    assert recommendation_rule(["Phase ramp"], few) == ["K", "M"]
    assert recommendation_rule([], few) == ["K"]
    # other wordings: bullets, "=", capitals, units after the number
    other = "- Number of Iterations = 20 epochs\n- Pos. correction = enabled\n"
    assert recommendation_rule(["Local distortion"], other) == ["K"]
    assert recommendation_rule(["Halo artifacts"], "") == ["J"]
    assert recommendation_rule(["Line artifacts"], "variable probe correction: on") == ["I"]


def test_clears_needs_the_lower_bound_strictly_above_the_floor() -> None:
    from ptychobench.baselines import clears

    assert clears(0.41, 0.40)
    assert not clears(0.40, 0.40)
    assert not clears(0.2, 0.40)
    assert not clears(None, 0.0)


@pytest.mark.parametrize(
    "listing",
    [
        "num_epochs: 20\nprobe_position_options.optimizable: False\nnum_opr_modes: 1",
        "- Number of iterations: 20 iterations\n- Probe position correction: disabled\n"
        "- Orthogonal probe relaxation (OPR) modes: 1",
        "iters: 20\npos. corr.: no\nOPR: 1",
        "• nIterations: 20\n• positionCorrection: false\n• oprModes: 1",
        "n_iter = 20\nposcorr = 0\nposcorr_affine = 1\nnmodes_opr = 1",
    ],
)
def test_recommendation_rule_reads_the_ways_people_list_parameters(listing: str) -> None:
    from ptychobench.baselines import recommendation_rule

    # 20 iterations: K; position correction off: G; OPR modes on: I for lines
    assert recommendation_rule(["Local distortion", "Line artifacts"], listing) == ["G", "I", "K"]
    on = listing.replace("False", "True").replace("disabled", "enabled").replace(": no", ": yes")
    on = on.replace(": false", ": true").replace("poscorr = 0", "poscorr = 1")
    assert recommendation_rule(["Local distortion"], on) == ["K"]
