from __future__ import annotations

import re

import pytest

from ptychobench.captions import Rule, explain, letters_from_advice, rules
from ptychobench.labels import OPTION_LETTERS, OPTIONS

# (expert advice, expected letters in vocabulary order)
ADVICE: list[tuple[str, tuple[str, ...]]] = [
    # A one batch
    ("Change the number of batches to 1.", ("A",)),
    ("Use a single batch.", ("A",)),
    ("Set number of batches = 1", ("A",)),
    ("Run it full-batch.", ("A",)),
    # B/E momentum
    ("Disable momentum acceleration", ("B",)),
    ("Turn off momentum.", ("B",)),
    ("Enable Nesterov momentum", ("E",)),
    ("Momentum acceleration should be turned on.", ("E",)),
    # C/F multimodal update
    ("Disable the multimodal update", ("C",)),
    ("Switch on multi-modal updates", ("F",)),
    # D/G position correction
    ("Turn off position correction; positions are accurate.", ("D",)),
    ("Fix the probe positions.", ("D",)),
    ("Enable position correction", ("G",)),
    ("Try probe position correction", ("G",)),
    ("Rerun with position correction", ("G",)),
    ("Refine the scan positions.", ("G",)),
    # H/N batch size
    ("Increase the batch size", ("H",)),
    ("Use larger batches.", ("H",)),
    ("Change the batch size from 50 to 200", ("H",)),
    ("Reduce the batch size", ("N",)),
    ("Batch size from 100 to 50", ("N",)),
    ("The batch size should be halved.", ("N",)),
    ("Use smaller batches", ("N",)),
    # I/S/T OPR modes
    ("Increase OPR modes to 3", ("I",)),
    ("Add more OPR modes", ("I",)),
    ("Increase the number of OPR modes from 1 to 4", ("I",)),
    ("Set OPR modes to 0", ("S",)),
    ("Turn off variable probe correction", ("S",)),
    ("Disable OPR", ("S",)),
    ("Set OPR modes to 1", ("T",)),
    ("Turn on variable probe", ("T",)),
    ("Use 1 OPR mode", ("T",)),
    ("Turn on variable probe correction with one OPR mode.", ("T",)),
    ("Use multiple OPR modes", ("I",)),
    # J probe modes
    ("Use 3 probe modes", ("J",)),
    ("Increase the number of probe modes to 2", ("J",)),
    ("Add more probe modes.", ("J",)),
    ("Use two probe modes", ("J",)),
    ("Try a mixed-state probe", ("J",)),
    # K iterations
    ("Increase the number of iterations to 2000", ("K",)),
    ("Run 500 more epochs.", ("K",)),
    ("More iterations are needed.", ("K",)),
    ("Iterations should be increased to 3,000", ("K",)),
    ("Run the reconstruction longer", ("K",)),
    ("Iterate more", ("K",)),
    ("Set the number of epochs to 1000", ("K",)),
    ("The reconstruction has not converged yet", ("K",)),
    ("Iterations from 500 to 2000", ("K",)),
    # L nothing to change
    ("Looks good, no changes", ("L",)),
    ("No changes needed.", ("L",)),
    ("The parameters are fine; keep the current settings.", ("L",)),
    # M recentre
    ("Recenter the diffraction patterns", ("M",)),
    ("The center of mass is off", ("M",)),
    ("Diffraction patterns are not centered.", ("M",)),
    # O pattern size
    ("Bin the diffraction patterns by 2", ("O",)),
    ("Crop to half", ("O",)),
    ("Reduce the diffraction pattern size", ("O",)),
    # P regularization
    ("Lower the TV regularization", ("P",)),
    ("Remove the regularization", ("P",)),
    ("The regularization is too strong.", ("P",)),
    # Q orientation
    ("Transpose the patterns", ("Q",)),
    ("Flip the diffraction data", ("Q",)),
    ("Try other diffraction pattern orientations", ("Q",)),
    # R affine
    ("Affine constraint off", ("R",)),
    ("Disable the affine constraint", ("R",)),
    # U, V, W, X
    ("Use a Gaussian noise model", ("U",)),
    ("Switch the noise model to Gaussian", ("U",)),
    ("Use compact batch selection", ("V",)),
    ("Set the batching mode to compact", ("V",)),
    ("Try the multislice model", ("W",)),
    ("Use multi-slice", ("W",)),
    ("Use sparse batching", ("X",)),
    # several actions in one sentence, verb carried across clauses
    ("Enable position correction and run 500 more epochs", ("G", "K")),
    ("Enable position correction, momentum and multimodal update", ("E", "F", "G")),
    ("Increase the probe modes and iterations", ("J", "K")),
    ("increase iterations to 2,000 and use two probe modes", ("J", "K")),
    ("Reduce the batch size from 100 to 50 then enable position correction.", ("G", "N")),
    ("Looks good, but increase the iterations", ("K",)),
    ("Recenter the patterns. Also set OPR modes to 0.", ("M", "S")),
    # negations
    ("No need to enable position correction", ()),
    ("Don't increase batch size", ()),
    ("Run 1000 more iterations without momentum", ("K",)),
    ("Don't enable position correction or momentum", ()),
    ("Enabling position correction is not necessary; increase iterations.", ("K",)),
    ("Keep position correction enabled and increase iterations", ("K",)),
    ("Use compact instead of sparse batch selection", ("V",)),
    ("Do not disable momentum, just add probe modes: use 3 probe modes", ("J",)),
    ("The image doesn't look good, increase iterations", ("K",)),
    ("Without changing the batch size increase the iterations", ("K",)),
    # nothing to map
    ("The sample is an integrated circuit.", ()),
    ("Halo artifacts are visible around the edges.", ()),
    ("Position correction is enabled.", ()),
    ("Reconstructed with 500 iterations and batch size 100.", ()),
    ("Set the batch size to 64", ()),
    ("Reduce the number of iterations to 100", ()),
    ("Reconstructed with position correction.", ()),
    ("Rotate the image for the figure.", ()),
    ("Run the reconstruction with more probe modes", ("J",)),
    ("The image doesn't look good.", ()),
    ("", ()),
]


@pytest.mark.parametrize(("text", "expected"), ADVICE, ids=[t or "<empty>" for t, _ in ADVICE])
def test_letters_from_advice(text: str, expected: tuple[str, ...]) -> None:
    assert letters_from_advice(text) == expected


def test_table_is_large_and_distinct() -> None:
    texts = [text for text, _ in ADVICE]
    assert len(set(texts)) == len(texts) >= 60


def test_every_letter_is_reachable() -> None:
    reached = {letter for _, letters in ADVICE for letter in letters}
    assert reached == set(OPTION_LETTERS)


@pytest.mark.parametrize("letter", OPTION_LETTERS)
def test_every_option_text_maps_to_its_own_letter(letter: str) -> None:
    assert letters_from_advice(OPTIONS[letter]) == (letter,)


def test_every_letter_has_a_rule_and_rules_are_case_insensitive() -> None:
    assert {rule.letter for rule in rules()} == set(OPTION_LETTERS)
    assert all(isinstance(rule, Rule) and rule.pattern.flags & re.IGNORECASE for rule in rules())
    assert all(rule.note for rule in rules())


def test_case_does_not_matter() -> None:
    assert letters_from_advice("ENABLE POSITION CORRECTION") == ("G",)


def test_result_is_in_vocabulary_order_without_repeats() -> None:
    text = "Use sparse batching. Recenter the patterns. Use a single batch. Recenter again."
    assert letters_from_advice(text) == ("A", "M", "X")


def test_null_letter_only_when_nothing_else() -> None:
    assert letters_from_advice("No changes needed.") == ("L",)
    assert letters_from_advice("No changes needed except: use the multislice model.") == ("W",)


def test_explain_lists_clause_letter_and_note() -> None:
    hits = explain("Enable position correction and run 500 more epochs")
    assert ("Enable position correction", "G", "enable position correction") in hits
    assert {letter for _, letter, _ in hits} == {"G", "K"}


def test_explain_marks_negated_hits() -> None:
    hits = explain("No need to enable position correction")
    assert [(letter, note) for _, letter, note in hits] == [
        ("G", "negated: enable position correction")
    ]


def test_explain_shows_the_borrowed_verb() -> None:
    clauses = [clause for clause, _, _ in explain("Disable momentum and multimodal update")]
    assert "Disable multimodal update" in clauses
