"""Model answer text → PtychoBench labels.

Two modes, because the benchmark has to report both:

``strict``
    The published scoring, unchanged: ``re.search(r'<answer>\\[?(.*?)\\]?</answer>', text)``
    (no DOTALL, so an answer that spans lines is not found), split on ``,``, strip; a
    fragment counts only when it is exactly a vocabulary entry (an artifact label, or one
    letter A–X). Everything else non-empty is reported in ``unmapped``.

``robust`` (default)
    What a model meant, read as generously as is safe. Inside ``<answer>`` tags (any case,
    spacing, line breaks; a missing closing tag; brackets optional) the answer is cut at
    ``,`` ``;`` ``.`` ``and`` ``&`` and new lines (bullets and numbering removed), quotes and
    markdown stripped, and each fragment is mapped through normalisation (lower case,
    punctuation and the word "artifacts" dropped, simple plural stemming), a table of
    aliases ("halo", "noise", "blurry", "phase ramps", "nonuniform background"), letter forms
    (``G``, ``G)``, ``(G)``, ``G.``, ``Option G``, ``G) Enable …``), the full option texts,
    for recommendations the curated advice rules of :mod:`ptychobench.captions` (they read
    verbs, so "enable" and "disable" never blur), and last a ``difflib`` close match with a
    high cutoff for typos. Where several tagged blocks exist (a model that echoes the
    format line, or runs on into an invented next turn), the first that maps cleanly wins.

    Without tags, only clearly answer-shaped text is taken, never prose: the last
    ``[…]`` list, or lines that consist of nothing but labels (optionally after
    ``Answer:``/``Artifacts:``/``Options:``). For recommendations such lines may hold only
    capital letters, letter forms or exact option texts, so "I think a larger batch…" never
    becomes ``I`` or ``A``. ``found_answer`` stays False, so such a result never counts as
    ``ok``.

Null labels (both modes): "No obvious artifacts" (detection) and ``L`` (recommendation)
given together with concrete labels are dropped and ``dropped_null`` is set. An answer that
names an artifact or an action is a positive finding; "nothing to report" next to it is
self-contradictory, and keeping it would count a false positive on the null class whatever
the truth is. An answer of only the null label keeps it. An empty answer
(``<answer></answer>``, ``<answer>[]</answer>``) is a valid answer with no labels.

``parity_labels`` is separate: it reproduces the published ``extract_labels`` exactly,
raw strings included, for the parity scoring.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from ptychobench.captions import letters_from_advice
from ptychobench.labels import (
    ARTIFACT_LABELS,
    NO_ARTIFACTS,
    OPTIONS,
    Task,
    null_label,
    vocabulary,
)

__all__ = [
    "Mode",
    "ParseResult",
    "parity_labels",
    "parse_answer",
    "parse_artifacts",
    "parse_options",
]

Mode = Literal["robust", "strict"]


@dataclass(frozen=True)
class ParseResult:
    """Labels read from one answer, and what could not be read."""

    labels: tuple[str, ...]
    """Vocabulary labels, vocabulary order, no repeats."""
    unmapped: tuple[str, ...] = ()
    """Answer fragments that matched no label (parse failures)."""
    found_answer: bool = False
    """An ``<answer>…</answer>`` block was found."""
    dropped_null: bool = False
    """The null label was given together with others and dropped."""

    @property
    def ok(self) -> bool:
        """The answer was found and every fragment of it was understood."""
        return self.found_answer and not self.unmapped


# --- published regexes -------------------------------------------------------------------

_PUBLISHED_ANSWER: Final = re.compile(r"<answer>\[?(.*?)\]?</answer>")
_PUBLISHED_VLM_ANSWER: Final = re.compile(r"<answer>\[(.*?)\]</answer>")

# --- robust reading ----------------------------------------------------------------------

_ANSWER_BLOCK: Final = re.compile(r"<\s*answer\s*>(.*?)(?:<\s*/\s*answer\s*>|\Z)", re.I | re.S)
_BRACKET_LIST: Final = re.compile(r"\[([^\[\]]*)\]")
_BULLET: Final = re.compile(r"^\s*(?:[-*•·+>]+|\d{1,2}[.)])\s+")
_ANSWER_PREFIX: Final = re.compile(
    r"^\W*(?:the\s+)?(?:(?:final|my)\s+)?(?:answers?|(?:detected\s+|visible\s+)?artifacts?"
    r"(?:\s+(?:detected|present|found|observed|identified|visible))?|labels?|options?"
    r"|recommend(?:ed|ations?)?(?:\s+options?)?|selected(?:\s+options?)?|selections?"
    r"|choices?)(?:\s*[:=]|\s+(?:is|are)\b:?)\W*",
    re.I,
)
_SEPARATOR: Final = re.compile(r"[,;|]|\.(?=\s|$)|\s+(?:and|&)\s+|&", re.I)
_DECORATION: Final = "\"'`*_[]{}<> \t"
_PARENTHETICAL: Final = re.compile(r"\([^)]*\)")
_OPTION_WORD: Final = re.compile(r"^(?i:options?)\s*")
_LETTER_TOKEN: Final = re.compile(r"[(\[]?([A-Xa-x])[)\].:]?")
_LETTER_THEN_TEXT: Final = re.compile(r"[(\[]?([A-Xa-x])(?:\s*[)\].:\-–]\s+|\s+(?=\())\S.*")
_TEXT_THEN_LETTER: Final = re.compile(r".+?\s*[(\[]([A-Xa-x])[)\]]")
_WORD: Final = re.compile(r"[a-z0-9]+")
_CLOSE_MATCH_CUTOFF: Final = 0.85

_DETECTION_DROP: Final = frozenset(
    [
        "artifact",
        "the",
        "a",
        "an",
        "strong",
        "slight",
        "slightly",
        "mild",
        "severe",
        "visible",
        "some",
        "minor",
        "significant",
        "heavy",
        "prominent",
        "possible",
        "obvious",
        "apparent",
        "clear",
        "noticeable",
        "evident",
        "faint",
    ]
)
_OPTION_DROP: Final = frozenset(["the", "a", "an", "of", "number", "please"])

_DETECTION_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "Grid artifacts": ("grid pattern", "raster grid", "periodic grid", "checkerboard"),
    "Halo artifacts": ("halo effect", "halo ring", "halo rings"),
    "Line artifacts": ("line pattern", "streaks", "stripes"),
    "Local distortion": ("distortion", "localized distortion", "localised distortion"),
    "Low contrast": ("poor contrast", "weak contrast", "lack of contrast"),
    "No clear structure": ("unclear structure", "no discernible structure", "no structures"),
    "Noisy artifacts": ("noise", "noisy image", "high noise"),
    "Non-uniform background": (
        "nonuniform background",
        "uneven background",
        "inhomogeneous background",
        "background variation",
        "background non-uniformity",
    ),
    "Phase ramp": ("phase gradient", "linear phase ramp", "ramp"),
    "Singularity artifacts": ("phase singularities", "phase vortices", "vortices", "vortex"),
    "Blurring": ("blur", "blurry", "blurred", "blurriness", "out of focus"),
    NO_ARTIFACTS: ("none", "no issues", "good quality", "clean"),
}
_OPTION_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "L": ("none", "no change", "no changes", "nothing"),
}


def _stem(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _key(text: str, drop: frozenset[str]) -> str:
    """Lower case, words only, stemmed, filler words dropped, joined without spaces."""
    words = _WORD.findall(text.lower().replace("artefact", "artifact"))
    stems = (_stem(word) for word in words if word not in drop)
    return "".join(stem for stem in stems if stem not in drop)


def _table(
    names: Mapping[str, str], aliases: Mapping[str, tuple[str, ...]], drop: frozenset[str]
) -> dict[str, str]:
    """key → label for every label text, its text without parentheses, and its aliases."""
    table: dict[str, str] = {}
    for label, text in names.items():
        for variant in (text, _PARENTHETICAL.sub(" ", text), *aliases.get(label, ())):
            table.setdefault(_key(variant, drop), label)
    return table


@functools.cache
def _detection_table() -> dict[str, str]:
    return _table({label: label for label in ARTIFACT_LABELS}, _DETECTION_ALIASES, _DETECTION_DROP)


@functools.cache
def _option_table() -> dict[str, str]:
    return _table(dict(OPTIONS), _OPTION_ALIASES, _OPTION_DROP)


def _close(key: str, table: dict[str, str]) -> str | None:
    found = difflib.get_close_matches(key, list(table), n=1, cutoff=_CLOSE_MATCH_CUTOFF)
    return table[found[0]] if found else None


def _map_artifact(fragment: str, loose: bool) -> tuple[str, ...]:
    table = _detection_table()
    for text in (fragment, _PARENTHETICAL.sub(" ", fragment)):
        key = _key(text, _DETECTION_DROP)
        if key in table:
            return (table[key],)
    key = _key(fragment, _DETECTION_DROP)
    label = _close(key, table) if loose and key else None
    return (label,) if label else ()


def _letters(fragment: str, loose: bool) -> tuple[str, ...]:
    """Letters written as letters: ``G``, ``G K``, ``(G)``, ``G.``, ``Option G``, ``G) text``."""
    fragment = _OPTION_WORD.sub("", fragment)
    tokens = [_LETTER_TOKEN.fullmatch(token) for token in fragment.split()]
    found = [m.group(1) for m in tokens if m is not None]
    if not found or len(found) != len(tokens):
        match = _LETTER_THEN_TEXT.fullmatch(fragment) or _TEXT_THEN_LETTER.fullmatch(fragment)
        found = [match.group(1)] if match else []
    if not loose and any(letter.islower() for letter in found):
        return ()
    return tuple(letter.upper() for letter in found)


def _map_option(fragment: str, loose: bool) -> tuple[str, ...]:
    letters = _letters(fragment, loose)
    if letters:
        return letters
    table = _option_table()
    key = _key(fragment, _OPTION_DROP)
    if key in table:
        return (table[key],)
    if not loose or not key:
        return ()
    advised = letters_from_advice(fragment)
    if advised:
        return advised
    letter = _close(key, table)
    return (letter,) if letter else ()


def _map_fragment(fragment: str, task: Task, loose: bool) -> tuple[str, ...]:
    if task is Task.DETECTION:
        return _map_artifact(fragment, loose)
    return _map_option(fragment, loose)


def _fragments(content: str) -> list[str]:
    """Answer content cut into candidate label strings."""
    out: list[str] = []
    for raw in content.strip().strip("[]").splitlines():
        line = _ANSWER_PREFIX.sub("", _BULLET.sub("", raw.strip()))
        for part in _SEPARATOR.split(line):
            part = part.strip(_DECORATION).rstrip(".:!?").strip(_DECORATION)
            if part:
                out.append(part)
    return out


def _read(fragments: Iterable[str], task: Task, loose: bool) -> tuple[set[str], list[str]]:
    labels: set[str] = set()
    unmapped: list[str] = []
    for fragment in fragments:
        mapped = _map_fragment(fragment, task, loose)
        labels.update(mapped)
        if not mapped:
            unmapped.append(fragment)
    return labels, unmapped


def _choose(readings: list[tuple[set[str], list[str]]]) -> tuple[set[str], list[str]]:
    """First fully understood block with labels, else with labels, else understood, else first."""

    def rank(reading: tuple[set[str], list[str]]) -> tuple[bool, bool, bool]:
        labels, unmapped = reading
        return (bool(unmapped) or not labels, not labels, bool(unmapped))

    return min(readings, key=rank)


def _untagged(text: str, task: Task) -> tuple[set[str], list[str]]:
    """Answer-shaped text outside tags: the last ``[…]`` list, else lines of labels only."""
    for match in reversed(list(_BRACKET_LIST.finditer(text))):
        labels, unmapped = _read(_fragments(match.group(1)), task, loose=True)
        if labels:
            return labels, unmapped
    labels = set()
    for line in text.splitlines():
        mapped = [_map_fragment(f, task, loose=False) for f in _fragments(line)]
        if mapped and all(mapped):
            labels.update(label for group in mapped for label in group)
    return labels, []


def _strict(text: str, task: Task) -> tuple[set[str], list[str], bool]:
    match = _PUBLISHED_ANSWER.search(text)
    if match is None:
        return set(), [], False
    vocab = set(vocabulary(task))
    labels: set[str] = set()
    unmapped: list[str] = []
    for fragment in (part.strip() for part in match.group(1).split(",")):
        if fragment in vocab:
            labels.add(fragment)
        elif fragment:
            unmapped.append(fragment)
    return labels, unmapped, True


def _robust(text: str, task: Task) -> tuple[set[str], list[str], bool]:
    text = text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    blocks = [match.group(1) for match in _ANSWER_BLOCK.finditer(text)]
    if not blocks:
        return (*_untagged(text, task), False)
    return (*_choose([_read(_fragments(block), task, loose=True) for block in blocks]), True)


def parse_answer(text: str, task: Task | str, mode: Mode = "robust") -> ParseResult:
    """Read a model's answer for ``task``; see the module docstring for the two modes."""
    task = Task(task)
    if mode == "strict":
        labels, unmapped, found = _strict(text, task)
    elif mode == "robust":
        labels, unmapped, found = _robust(text, task)
    else:
        raise ValueError(f"mode must be 'robust' or 'strict', not {mode!r}")
    null = null_label(task)
    dropped_null = null in labels and len(labels) > 1
    if dropped_null:
        labels.discard(null)
    return ParseResult(
        labels=tuple(label for label in vocabulary(task) if label in labels),
        unmapped=tuple(dict.fromkeys(unmapped)),
        found_answer=found,
        dropped_null=dropped_null,
    )


def parse_artifacts(text: str, mode: Mode = "robust") -> ParseResult:
    """``parse_answer`` for artifact detection."""
    return parse_answer(text, Task.DETECTION, mode)


def parse_options(text: str, mode: Mode = "robust") -> ParseResult:
    """``parse_answer`` for parameter recommendation."""
    return parse_answer(text, Task.RECOMMENDATION, mode)


def parity_labels(text: str, *, require_brackets: bool = False) -> list[str]:
    """Exactly the published ``extract_labels``: raw strings, order and repeats kept.

    ``re.search(r'<answer>\\[?(.*?)\\]?</answer>', text)``; no match → ``[]``; split on
    ``,``, strip, drop empty strings and "No obvious artifacts". The published VLM
    (detection) script used ``r'<answer>\\[(.*?)\\]</answer>'`` instead, brackets required;
    ``require_brackets=True`` reproduces that one.
    """
    pattern = _PUBLISHED_VLM_ANSWER if require_brackets else _PUBLISHED_ANSWER
    match = pattern.search(text)
    if match is None or not match.group(1).strip():
        return []
    labels = [label.strip() for label in match.group(1).split(",")]
    return [label for label in labels if label and label != NO_ARTIFACTS]
