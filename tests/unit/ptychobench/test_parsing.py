from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS, OPTION_LETTERS, OPTIONS, Task
from ptychobench.parsing import (
    Mode,
    ParseResult,
    parity_labels,
    parse_answer,
    parse_artifacts,
    parse_options,
)

HALO, LINE, GRID = "Halo artifacts", "Line artifacts", "Grid artifacts"
MODES: tuple[Mode, ...] = ("strict", "robust")


def target(labels: Iterable[str], task: Task) -> str:
    """The canonical assistant target (kept local: prompts.py is not under test here)."""
    vocab = ARTIFACT_LABELS if task is Task.DETECTION else OPTION_LETTERS
    chosen = set(labels)
    text = ", ".join(label for label in vocab if label in chosen)
    return f"<answer>[{text}]</answer>" if task is Task.DETECTION else f"<answer>{text}</answer>"


# --- strict versus robust on the same inputs ---------------------------------------------
# (text, strict labels, robust labels)
DETECTION_BOTH: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("<answer>[Halo artifacts, Line artifacts]</answer>", (HALO, LINE), (HALO, LINE)),
    ("<answer>Halo artifacts, Line artifacts</answer>", (HALO, LINE), (HALO, LINE)),
    ("<answer>\n[Halo artifacts,\nLine artifacts]\n</answer>", (), (HALO, LINE)),
    ("<answer>[halo artifacts, LINE ARTIFACTS]</answer>", (), (HALO, LINE)),
    ("<Answer> [Halo artifacts] </Answer>", (), (HALO,)),
    ('<answer>["Halo artifacts", "Line artifacts"]</answer>', (), (HALO, LINE)),
    ("<answer>[Halo artifacts; Line artifacts]</answer>", (), (HALO, LINE)),
    ("<answer>[Halo artifacts and Line artifacts]</answer>", (), (HALO, LINE)),
    ("<answer>\n- Halo artifacts\n- Line artifacts\n</answer>", (), (HALO, LINE)),
    ("<answer>1. Halo artifacts\n2. Line artifacts</answer>", (), (HALO, LINE)),
    ("<answer>[Halo artifacts]</answer>\nThe halo comes from the probe.", (HALO,), (HALO,)),
    ("<answer>[Halo artifacts, Line artifacts", (), (HALO, LINE)),
]


@pytest.mark.parametrize(("text", "strict", "robust"), DETECTION_BOTH)
def test_detection_strict_and_robust(
    text: str, strict: tuple[str, ...], robust: tuple[str, ...]
) -> None:
    assert parse_artifacts(text, mode="strict").labels == strict
    assert parse_artifacts(text).labels == robust


RECOMMENDATION_BOTH: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("<answer>G, K</answer>", ("G", "K"), ("G", "K")),
    ("<answer>[G, K]</answer>", ("G", "K"), ("G", "K")),
    ("<answer>K,G,K</answer>", ("G", "K"), ("G", "K")),
    ("<answer>g, k</answer>", (), ("G", "K")),
    ("<answer>\nG, K\n</answer>", (), ("G", "K")),
    ("<answer>G K</answer>", (), ("G", "K")),
    ("<answer>G and K</answer>", (), ("G", "K")),
    ("<answer>G; K</answer>", (), ("G", "K")),
    ("<answer>G), K)</answer>", (), ("G", "K")),
    ("<answer>(G), (K)</answer>", (), ("G", "K")),
    ("<answer>G.\nK.</answer>", (), ("G", "K")),
    ("<answer>Option G, option K</answer>", (), ("G", "K")),
    (
        "<answer>G) Enable position correction, K) Increase the number of iterations</answer>",
        (),
        ("G", "K"),
    ),
    ("<answer>Enable position correction (G)</answer>", (), ("G",)),
    ("<answer>G (because of the halo), K</answer>", ("K",), ("G", "K")),
    ("<answer>Increase the number of iterations</answer>", (), ("K",)),
    ("<answer>increase the number of iterations</answer>", (), ("K",)),
    ("<answer>Increase iterations, enable position correction</answer>", (), ("G", "K")),
    ("<answer>Turn off variable probe correction</answer>", (), ("S",)),
    ("<answer>Turn on variable probe correction (set OPR modes to 1)</answer>", (), ("T",)),
    ("<answer>Use multislice</answer>", (), ("W",)),
    ("<answer>Enabel position corection</answer>", (), ("G",)),
    ("<answer>Disable position correction</answer>", (), ("D",)),
    ("<answer>G, K</answer> These changes will help convergence.", ("G", "K"), ("G", "K")),
]


@pytest.mark.parametrize(("text", "strict", "robust"), RECOMMENDATION_BOTH)
def test_recommendation_strict_and_robust(
    text: str, strict: tuple[str, ...], robust: tuple[str, ...]
) -> None:
    assert parse_options(text, mode="strict").labels == strict
    assert parse_options(text).labels == robust


# --- near-misses ------------------------------------------------------------------------
NEAR_MISSES: list[tuple[str, str]] = [
    ("halo", HALO),
    ("Halo", HALO),
    ("halos", HALO),
    ("phase ramps", "Phase ramp"),
    ("Noise", "Noisy artifacts"),
    ("noisy", "Noisy artifacts"),
    ("Noise artifacts", "Noisy artifacts"),
    ("grid", GRID),
    ("Grid artefacts", GRID),
    ("lines", LINE),
    ("line artifact", LINE),
    ("blurry", "Blurring"),
    ("Blur", "Blurring"),
    ("singularities", "Singularity artifacts"),
    ("Singularity", "Singularity artifacts"),
    ("nonuniform background", "Non-uniform background"),
    ("non uniform background", "Non-uniform background"),
    ("low-contrast", "Low contrast"),
    ("poor contrast", "Low contrast"),
    ("local distortions", "Local distortion"),
    ("no structure", "No clear structure"),
    ("strong halo", HALO),
    ("Halo artifacts (severe)", HALO),
    ("Singularty artifacts", "Singularity artifacts"),
    ("none", NO_ARTIFACTS),
    ("No artifacts", NO_ARTIFACTS),
    ("no visible artifacts", NO_ARTIFACTS),
]


@pytest.mark.parametrize(("fragment", "label"), NEAR_MISSES)
def test_detection_near_misses(fragment: str, label: str) -> None:
    result = parse_artifacts(f"<answer>[{fragment}]</answer>")
    assert result.labels == (label,)
    assert result.ok
    assert parse_artifacts(f"<answer>[{fragment}]</answer>", mode="strict").labels == (
        (label,) if fragment == label else ()
    )


@pytest.mark.parametrize("letter", OPTION_LETTERS)
def test_every_option_text_and_letter_form_parses(letter: str) -> None:
    for answer in (OPTIONS[letter], f"{letter})", f"({letter})", f"Option {letter}"):
        assert parse_options(f"<answer>{answer}</answer>").labels == (letter,), answer


# --- unmapped fragments and ok ----------------------------------------------------------


def test_unmapped_fragments_are_reported_in_order_once() -> None:
    result = parse_artifacts(
        "<answer>[Halo artifacts, Purple dragons, Foo, Purple dragons]</answer>"
    )
    assert result.labels == (HALO,)
    assert result.unmapped == ("Purple dragons", "Foo")
    assert result.found_answer
    assert not result.ok


def test_strict_reports_near_misses_as_unmapped() -> None:
    result = parse_artifacts("<answer>[halo, Line artifacts]</answer>", mode="strict")
    assert result == ParseResult(labels=(LINE,), unmapped=("halo",), found_answer=True)


def test_unknown_letter_is_unmapped() -> None:
    result = parse_options("<answer>G, Z</answer>")
    assert result.labels == ("G",)
    assert result.unmapped == ("Z",)


def test_prose_inside_the_tags_is_unmapped_but_letters_survive() -> None:
    result = parse_options("<answer>K. These changes will help.</answer>")
    assert result.labels == ("K",)
    assert result.unmapped == ("These changes will help",)
    assert not result.ok


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "text", ["<answer></answer>", "<answer>[]</answer>", "<answer>[ ]</answer>"]
)
def test_empty_answer_is_a_valid_answer(text: str, mode: Mode) -> None:
    for task in Task:
        result = parse_answer(text, task, mode)
        assert result == ParseResult(labels=(), found_answer=True)
        assert result.ok


@pytest.mark.parametrize("mode", MODES)
def test_no_answer_is_not_ok(mode: Mode) -> None:
    result = parse_artifacts("I cannot tell from this image.", mode=mode)
    assert result == ParseResult(labels=())
    assert not result.ok


def test_unknown_mode_raises() -> None:
    with pytest.raises(ValueError, match="mode"):
        parse_answer("<answer>G</answer>", Task.RECOMMENDATION, "lenient")  # type: ignore[arg-type]


def test_task_may_be_given_as_string() -> None:
    assert parse_answer("<answer>G</answer>", "recommendation").labels == ("G",)
    assert parse_answer("<answer>[Halo]</answer>", "detection").labels == (HALO,)


# --- several blocks, no tags ------------------------------------------------------------


def test_echoed_format_line_is_skipped() -> None:
    text = (
        'Format: <answer>[Comma-separated list of artifacts, or "No obvious artifacts" if the '
        "image quality is good]</answer>\n<answer>[Halo artifacts]</answer>"
    )
    result = parse_artifacts(text)
    assert result.labels == (HALO,)
    assert result.ok
    assert parse_artifacts(text, mode="strict").labels == ()


def test_first_clean_block_wins_over_an_invented_next_turn() -> None:
    text = "<answer>[Halo artifacts]</answer>\nUSER: next image\nASSISTANT: <answer>[Grid]</answer>"
    assert parse_artifacts(text).labels == (HALO,)


UNTAGGED: list[tuple[str, Task, tuple[str, ...]]] = [
    ("Halo artifacts, Line artifacts", Task.DETECTION, (HALO, LINE)),
    ("Artifacts: halo, lines", Task.DETECTION, (HALO, LINE)),
    ("I see [Grid artifacts, Halo artifacts] here.", Task.DETECTION, (GRID, HALO)),
    (
        "The image shows a halo.\n\nHalo artifacts\n\nIt comes from the probe.",
        Task.DETECTION,
        (HALO,),
    ),
    ("The image has noise and a halo.", Task.DETECTION, ()),
    ("Possible artifacts include: Grid artifacts, Halo artifacts.", Task.DETECTION, ()),
    ("G, K", Task.RECOMMENDATION, ("G", "K")),
    ("Answer: G, K", Task.RECOMMENDATION, ("G", "K")),
    ("**Final answer:** G, K", Task.RECOMMENDATION, ("G", "K")),
    ("The answer is G", Task.RECOMMENDATION, ("G",)),
    (
        "I recommend:\nG) Enable position correction\nK) Increase the number of iterations",
        Task.RECOMMENDATION,
        ("G", "K"),
    ),
    ("Increase the number of iterations", Task.RECOMMENDATION, ("K",)),
    ("A good reconstruction needs more iterations. I think so.", Task.RECOMMENDATION, ()),
    ("I would increase iterations and enable position correction.", Task.RECOMMENDATION, ()),
    ("g, k", Task.RECOMMENDATION, ()),
]


@pytest.mark.parametrize(("text", "task", "labels"), UNTAGGED)
def test_untagged_answers(text: str, task: Task, labels: tuple[str, ...]) -> None:
    result = parse_answer(text, task)
    assert result.labels == labels
    assert not result.found_answer
    assert not result.ok
    assert parse_answer(text, task, "strict").labels == ()


# --- the null rule ----------------------------------------------------------------------
NULL_CASES: list[tuple[str, Task, tuple[str, ...], bool]] = [
    ("<answer>[Halo artifacts, No obvious artifacts]</answer>", Task.DETECTION, (HALO,), True),
    (
        "<answer>[No obvious artifacts, Halo artifacts, Line artifacts]</answer>",
        Task.DETECTION,
        (HALO, LINE),
        True,
    ),
    ("<answer>[No obvious artifacts]</answer>", Task.DETECTION, (NO_ARTIFACTS,), False),
    (
        "<answer>[No obvious artifacts, No obvious artifacts]</answer>",
        Task.DETECTION,
        (NO_ARTIFACTS,),
        False,
    ),
    ("<answer>G, K, L</answer>", Task.RECOMMENDATION, ("G", "K"), True),
    ("<answer>L, K</answer>", Task.RECOMMENDATION, ("K",), True),
    ("<answer>L</answer>", Task.RECOMMENDATION, ("L",), False),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("text", "task", "labels", "dropped"), NULL_CASES)
def test_null_label_rule(
    text: str, task: Task, labels: tuple[str, ...], dropped: bool, mode: Mode
) -> None:
    result = parse_answer(text, task, mode)
    assert result.labels == labels
    assert result.dropped_null is dropped
    assert result.ok


def test_null_rule_in_robust_aliases() -> None:
    result = parse_artifacts("<answer>[none, halo]</answer>")
    assert result.labels == (HALO,)
    assert result.dropped_null
    assert parse_options("<answer>No changes needed, Use multislice model</answer>").labels == (
        "W",
    )


# --- parity with the published extract_labels -------------------------------------------
PARITY: list[tuple[str, list[str]]] = [
    ("<answer>[Halo artifacts, No obvious artifacts]</answer>", ["Halo artifacts"]),
    ("<answer>\n[Halo]\n</answer>", []),
    ("<answer>[No obvious artifacts]</answer>", []),
    ("<answer>[]</answer>", []),
    ("<answer>[ , ]</answer>", []),
    ("no tags at all", []),
    ("<answer>[halo, Halo artifacts, halo]</answer>", ["halo", "Halo artifacts", "halo"]),
    ("<answer>G, K</answer>", ["G", "K"]),
    ("<answer>Halo artifacts</answer>", ["Halo artifacts"]),
    ("<answer>[A]</answer> then <answer>[B]</answer>", ["A"]),
    ("<ANSWER>[Halo artifacts]</ANSWER>", []),
    ("<answer>[Halo artifacts, Line artifacts</answer>", ["Halo artifacts", "Line artifacts"]),
]


@pytest.mark.parametrize(("text", "expected"), PARITY)
def test_parity_labels(text: str, expected: list[str]) -> None:
    assert parity_labels(text) == expected


def test_parity_labels_bracket_variant_of_the_vlm_script() -> None:
    assert parity_labels("<answer>Halo artifacts</answer>", require_brackets=True) == []
    assert parity_labels("<answer>[Halo, Line]</answer>", require_brackets=True) == ["Halo", "Line"]


def test_strict_uses_the_published_regex() -> None:
    # The same regex as parity_labels, but the null label is kept as a label.
    text = "<answer>[No obvious artifacts]</answer> <answer>[Halo artifacts]</answer>"
    assert parse_artifacts(text, mode="strict").labels == (NO_ARTIFACTS,)
    assert parity_labels(text) == []


# --- round trip of the canonical target format ------------------------------------------


def _expected(chosen: set[str], task: Task) -> tuple[tuple[str, ...], bool]:
    null = NO_ARTIFACTS if task is Task.DETECTION else "L"
    dropped = null in chosen and len(chosen) > 1
    kept = chosen - {null} if dropped else chosen
    vocab = ARTIFACT_LABELS if task is Task.DETECTION else OPTION_LETTERS
    return tuple(label for label in vocab if label in kept), dropped


@given(chosen=st.sets(st.sampled_from(ARTIFACT_LABELS)), mode=st.sampled_from(MODES))
def test_detection_target_round_trips(chosen: set[str], mode: Mode) -> None:
    result = parse_artifacts(target(chosen, Task.DETECTION), mode=mode)
    assert (result.labels, result.dropped_null) == _expected(chosen, Task.DETECTION)
    assert result.ok


@given(chosen=st.sets(st.sampled_from(OPTION_LETTERS)), mode=st.sampled_from(MODES))
def test_recommendation_target_round_trips(chosen: set[str], mode: Mode) -> None:
    result = parse_options(target(chosen, Task.RECOMMENDATION), mode=mode)
    assert (result.labels, result.dropped_null) == _expected(chosen, Task.RECOMMENDATION)
    assert result.ok
