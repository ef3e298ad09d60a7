"""Expert free-text advice (``caption_param``) → option letters A–X.

The paper's recommendation ground truth was made by "a curated set of regular
expressions" that turned the expert's advice ("Increase the number of iterations to
2000") into letters (``K``). Those expressions were not published, so this module is our
curated table: ``rules()``, one ``Rule(letter, pattern, note)`` per way an expert words an
action, kept in one place so a disagreement with an annotator is fixed by editing one row.

How a text is read, and why:

* It is cut into sentences (``.``, ``;``, ``!``, ``?``, new line) and each sentence into
  clauses (``,``, ``and``, ``or``, ``but``, ``then`` …), so that "enable position
  correction and run 500 more epochs" yields two letters and a negation in one clause
  cannot reach an action in the next.
* A short clause without a verb borrows the verb of the clause before it in the same
  sentence ("enable position correction, momentum and multimodal update" → G, E, F).
* A hit is dropped when a negation cue stands in the four words before it ("no need to
  enable …", "don't increase …", "without momentum", "keep … as is") or a dismissal
  follows it ("… is not needed"). "Disable X" is its own option, never a negated
  "enable X", and a negated "enable X" does not imply "disable X".
* Numbers decide direction where the wording does not: "batch size from 100 to 50" is a
  reduction (N), "OPR modes to 0/1/3" is S/T/I, "use 3 probe modes" is J. A bare target
  without a direction ("set the batch size to 64") yields nothing, since the current value
  is not in the text. A target number of iterations or epochs is read as an increase (K):
  experts do not write out an iteration count to ask for fewer.
* ``L`` (no changes needed) is returned only when no other letter was found.

Why one module of 500-odd lines: about half of it is the rule table (``_SPECS``), and the
other half is the reader that gives the table's patterns their meaning (clauses,
borrowed verbs, negation windows). A disagreement with an annotator is settled by
reading a row and the reader together; split, each half would be unreadable alone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ptychobench.labels import NO_CHANGES, OPTION_LETTERS

__all__ = ["Rule", "explain", "letters_from_advice", "rules"]

Condition = Callable[[re.Match[str]], bool]


@dataclass(frozen=True)
class Rule:
    """One curated wording of one option: a hit of ``pattern`` in a clause means ``letter``.

    ``when`` (optional) looks at the match's named groups (``n``, ``old``) to check a
    number, so that one wording can mean different letters depending on the value.
    """

    letter: str
    pattern: re.Pattern[str]
    note: str
    when: Condition | None = None


# --- numbers -------------------------------------------------------------------------

_WORD_NUMBERS: Final = {
    "zero": 0,
    "one": 1,
    "single": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
}


def _number(match: re.Match[str], group: str) -> int | None:
    """The value of a named group: digits (thousands commas allowed) or a small word."""
    raw = match.groupdict().get(group)
    if raw is None:
        return None
    raw = raw.replace(",", "").lower()
    return int(raw) if raw.isdigit() else _WORD_NUMBERS.get(raw, 2)


def _equals(value: int) -> Condition:
    return lambda m: _number(m, "n") == value


def _at_least_two(m: re.Match[str]) -> bool:
    n = _number(m, "n")
    return n is None or n >= 2


def _not_down(m: re.Match[str]) -> bool:
    """No ``from old to n`` in the match, or it goes up."""
    old, new = _number(m, "old"), _number(m, "n")
    return old is None or new is None or new > old


def _up(m: re.Match[str]) -> bool:
    old, new = _number(m, "old"), _number(m, "n")
    return old is not None and new is not None and new > old


def _down(m: re.Match[str]) -> bool:
    old, new = _number(m, "old"), _number(m, "n")
    return old is not None and new is not None and new < old


def _more_modes(m: re.Match[str]) -> bool:
    return _at_least_two(m) and _not_down(m)


# --- vocabulary of the patterns --------------------------------------------------------

_DET = r"(?:the\s+|a\s+|an\s+)?"
_NUM = r"(?P<n>\d[\d,]*|zero|one|single|two|three|four|five|six|seven|eight|multiple|several)"
_FROM_TO = r"(?:from\s+(?P<old>\d[\d,]*)\s+)?(?:to|=|:|of)\s*(?P<n>\d[\d,]*)"
_ENABLE = (
    r"(?:enabl(?:e|ing)|turn(?:ing)?\s+on|switch(?:ing)?\s+on|activat(?:e|ing)|us(?:e|ing)"
    r"|add(?:ing)?|appl(?:y|ying)|tr(?:y|ying)|includ(?:e|ing)|allow(?:ing)?"
    r"|(?:re-?)?run\s+(?:it\s+)?with)"
)
_DISABLE = (
    r"(?:disabl(?:e|ing)|turn(?:ing)?\s+off|switch(?:ing)?\s+off|deactivat(?:e|ing)"
    r"|remov(?:e|ing)|drop(?:ping)?|stop(?:ping)?\s+using|get\s+rid\s+of)"
)
_INCREASE = (
    r"(?:increas(?:e|ing)|rais(?:e|ing)|doubl(?:e|ing)|tripl(?:e|ing)|boost(?:ing)?"
    r"|bump(?:ing)?(?:\s+up)?|extend(?:ing)?)"
)
_DECREASE = (
    r"(?:reduc(?:e|ing)|decreas(?:e|ing)|lower(?:ing)?|halv(?:e|ing)|shrink(?:ing)?"
    r"|cut(?:ting)?|minimi[sz](?:e|ing))"
)
_TO_BE = r"(?:should\s+be\s+|must\s+be\s+|needs?\s+to\s+be\s+|to\s+be\s+|be\s+)?"
_ON = _TO_BE + r"(?:on|enabled|turned\s+on|switched\s+on|activated)\b"
_OFF = _TO_BE + r"(?:off|disabled|turned\s+off|switched\s+off|deactivated|removed)\b"

_MOMENTUM = r"(?:nesterov\s+)?(?:momentum|nesterov)(?:\s+acceleration)?"
_MULTIMODAL = r"multi[-\s]?modal(?:\s+(?:probe\s+)?updates?)?"
_POSITIONS = r"(?:probe\s+|scan\s+)?position\s+(?:correction|refinement|updates?|optimi[sz]ation)"
_VARIABLE_PROBE = r"(?:variable[-\s]probe(?:\s+correction)?|opr(?:\s+modes?)?)"
_ITERATIONS = r"(?:iterations?|iters?|epochs?|n_?iters?|num_?iter\w*)\b"
_REGULARIZATION = r"(?:regulari[sz](?:ation|er)s?|tv\b|total[-\s]variation)"
_PATTERNS = r"(?:diffraction\s+(?:patterns?|data|images?)|patterns?|data|dps?)\b"
_SIZE_NOUN = r"(?:diffraction\s+)?(?:pattern\s+|dp\s+|detector\s+|image\s+)?size\b"


_Spec = tuple[str, str, str, Condition | None]


def _rule(letter: str, pattern: str, note: str, when: Condition | None = None) -> _Spec:
    return (letter, pattern, note, when)


def _toggle(on: str, off: str, noun: str, name: str) -> tuple[_Spec, ...]:
    """Rules for a feature with an "enable" and a "disable" option."""
    return (
        _rule(on, rf"\b{_ENABLE}\s+{_DET}{noun}", f"enable {name}"),
        _rule(on, rf"\b{noun}\s+{_ON}", f"{name} on"),
        _rule(off, rf"\b{_DISABLE}\s+{_DET}{noun}", f"disable {name}"),
        _rule(off, rf"\b{noun}\s+{_OFF}", f"{name} off"),
    )


_SPECS: Final[tuple[_Spec, ...]] = (
    # A: one batch
    _rule(
        "A",
        r"\b(?:number\s+of\s+batch(?:es)?|num_?batch(?:es)?|batch\s+count)\s+(?:\w+\s+){0,2}?"
        r"(?:to|=|:|of)\s*(?:1|one)\b",
        "number of batches → 1",
    ),
    _rule("A", r"\b(?:a\s+)?(?:single|one)\s+batch\b(?!\s*size)", "a single batch"),
    _rule("A", r"\bfull[-\s]batch\b", "full batch"),
    # B/E momentum, C/F multimodal update, D/G position correction
    *_toggle("E", "B", _MOMENTUM, "momentum"),
    *_toggle("F", "C", _MULTIMODAL, "multimodal update"),
    *_toggle("G", "D", _POSITIONS, "position correction"),
    _rule(
        "G",
        r"\b(?:correct|refin)(?:e|ing)\s+(?:the\s+)?(?:probe\s+|scan\s+)?positions\b",
        "refine the positions",
    ),
    _rule(
        "D",
        r"\b(?:fix(?:ing)?|freez(?:e|ing))\s+(?:the\s+)?(?:probe\s+|scan\s+)?positions\b",
        "fix the positions",
    ),
    # H/N batch size
    _rule("H", rf"\b{_INCREASE}\s+{_DET}batch[\s_]?size", "increase batch size"),
    _rule(
        "H", r"\b(?:larger|bigger|greater|higher)\s+batch(?:[\s_]?sizes?|es)\b", "larger batches"
    ),
    _rule(
        "H",
        rf"\bbatch[\s_]?size\s+{_TO_BE}(?:increased|raised|doubled|larger|bigger)\b",
        "batch size increased",
    ),
    _rule(
        "H",
        r"\bbatch[\s_]?size\s+(?:\w+\s+){0,2}?from\s+(?P<old>\d+)\s+to\s+(?P<n>\d+)",
        "batch size from small to large",
        _up,
    ),
    _rule("N", rf"\b{_DECREASE}\s+{_DET}batch[\s_]?size", "reduce batch size"),
    _rule("N", r"\b(?:smaller|lower)\s+batch(?:[\s_]?sizes?|es)\b", "smaller batches"),
    _rule(
        "N",
        rf"\bbatch[\s_]?size\s+{_TO_BE}(?:reduced|decreased|lowered|halved|smaller)\b",
        "batch size reduced",
    ),
    _rule(
        "N",
        r"\bbatch[\s_]?size\s+(?:\w+\s+){0,2}?from\s+(?P<old>\d+)\s+to\s+(?P<n>\d+)",
        "batch size from large to small",
        _down,
    ),
    # I/S/T OPR modes, by verb or by the number of modes
    _rule(
        "I",
        rf"\b(?:{_INCREASE}|more|additional|extra)\s+{_DET}(?:number\s+of\s+)?opr"
        rf"(?:\s+modes?)?(?:\s+(?:from\s+\d+\s+)?to\s+(?P<n>\d+))?",
        "more OPR modes",
        _at_least_two,
    ),
    _rule(
        "I", rf"\bopr\s+modes?\s+(?:\w+\s+){{0,2}}?{_FROM_TO}", "OPR modes → n ≥ 2", _at_least_two
    ),
    _rule("I", rf"\b{_NUM}\s+opr\s+modes?\b", "n ≥ 2 OPR modes", _at_least_two),
    _rule("S", rf"\bopr\s+modes?\s+(?:\w+\s+){{0,2}}?{_FROM_TO}", "OPR modes → 0", _equals(0)),
    _rule("S", rf"\b{_NUM}\s+opr\s+modes?\b", "0 OPR modes", _equals(0)),
    _rule("S", rf"\b{_DISABLE}\s+{_DET}{_VARIABLE_PROBE}", "variable probe off"),
    _rule("S", rf"\b{_VARIABLE_PROBE}\s+{_OFF}", "variable probe off"),
    _rule("T", rf"\bopr\s+modes?\s+(?:\w+\s+){{0,2}}?{_FROM_TO}", "OPR modes → 1", _equals(1)),
    _rule("T", rf"\b{_NUM}\s+opr\s+modes?\b", "1 OPR mode", _equals(1)),
    _rule("T", rf"\b{_ENABLE}\s+{_DET}{_VARIABLE_PROBE}", "variable probe on"),
    _rule("T", rf"\b{_VARIABLE_PROBE}\s+{_ON}", "variable probe on"),
    # J probe modes
    _rule(
        "J",
        rf"\b(?:{_INCREASE}|more|additional|extra|multiple|several)\s+{_DET}"
        r"(?:number\s+of\s+)?(?:\w+\s+)?probe\s+modes?"
        r"(?:\s+(?:from\s+(?P<old>\d+)\s+)?to\s+(?P<n>\d+))?",
        "more probe modes",
        _more_modes,
    ),
    _rule(
        "J", rf"\bprobe\s+modes?\s+(?:\w+\s+){{0,2}}?{_FROM_TO}", "probe modes → n ≥ 2", _more_modes
    ),
    _rule(
        "J",
        rf"\b(?:use|using|try|with|add(?:ing)?)\s+{_NUM}\s+(?:\w+\s+)?probe\s+modes?",
        "use n ≥ 2 probe modes",
        _at_least_two,
    ),
    _rule(
        "J",
        rf"\b{_ENABLE}\s+{_DET}(?:mixed[-\s]state|multi(?:ple)?[-\s]?modes?)\s+probe",
        "mixed-state probe",
    ),
    # K iterations
    _rule(
        "K",
        rf"\b{_INCREASE}\s+{_DET}(?:total\s+)?(?:number\s+of\s+)?{_ITERATIONS}"
        r"(?:\s+from\s+(?P<old>\d[\d,]*)\s+to\s+(?P<n>\d[\d,]*))?",
        "increase iterations",
        _not_down,
    ),
    _rule(
        "K",
        rf"\b(?:\d[\d,]*\s+)?(?:more|additional|extra|further|longer)\s+(?:\w+\s+)?"
        rf"{_ITERATIONS}",
        "more iterations",
    ),
    _rule(
        "K",
        rf"\b{_ITERATIONS}\s+(?:should|must|needs?\s+to|could|can)?\s*(?:be\s+)?"
        r"(?:increased|raised|extended|doubled)\b",
        "iterations increased",
    ),
    _rule(
        "K",
        r"\b(?:run|iterate|train|reconstruct|optimi[sz]e)\w*\s+(?:\w+\s+){0,3}?"
        r"(?:longer\b|more\s*$)",
        "run longer",
    ),
    _rule(
        "K",
        rf"\b(?:set|change|up|bump)\w*\s+{_DET}(?:number\s+of\s+)?{_ITERATIONS}\s+"
        r"(?:from\s+(?P<old>\d[\d,]*)\s+)?to\s+(?P<n>\d[\d,]*)",
        "set iterations to n (read as more)",
        _not_down,
    ),
    _rule(
        "K",
        rf"\b{_ITERATIONS}\s+(?:\w+\s+){{0,2}}?from\s+(?P<old>\d[\d,]*)\s+to\s+"
        r"(?P<n>\d[\d,]*)",
        "iterations from small to large",
        _up,
    ),
    _rule(
        "K",
        rf"\brun\s+(?:it\s+)?(?:for\s+)?\d[\d,]*\s+(?:\w+\s+)?{_ITERATIONS}",
        "run n iterations",
    ),
    _rule("K", r"\bnot\s+(?:yet\s+|fully\s+)?converged\b", "not converged → more iterations"),
    # L nothing to change (used only when nothing else is found)
    _rule(
        "L",
        r"\bno\s+(?:further\s+|more\s+|other\s+|parameter\s+)?"
        r"(?:changes?|adjustments?|modifications?|updates?|tuning)\b",
        "no changes",
    ),
    _rule(
        "L",
        r"\bnothing\s+(?:to\s+|needs?\s+to\s+(?:be\s+)?)?(?:chang|adjust|modif)",
        "nothing to change",
    ),
    _rule(
        "L",
        r"\b(?:no\s+need\s+to|(?:do|does)\s*n[o']?t\s+need\s+to|don'?t)\s+"
        r"(?:change|adjust|modify)\s+(?:anything|the\s+(?:parameters|settings))",
        "no need to change anything",
    ),
    _rule(
        "L",
        r"\b(?:keep|leave)\s+(?:the\s+|all\s+)?(?:current\s+)?(?:parameters|settings)",
        "keep the parameters",
    ),
    _rule(
        "L",
        r"\b(?:parameters|settings)\s+(?:are|look|seem)\s+(?:\w+\s+)?"
        r"(?:good|fine|ok|okay|appropriate|reasonable|optimal)\b",
        "parameters are fine",
    ),
    _rule(
        "L",
        r"\blooks?\s+(?:very\s+|quite\s+|pretty\s+|already\s+)?"
        r"(?:good|fine|great|excellent|ok|okay)\b",
        "looks good",
    ),
    _rule("L", r"\b(?:good|fine)\s+as\s+(?:is|it\s+is)\b", "good as is"),
    # M recentre
    _rule("M", r"\bre-?cent(?:er|re)(?:ing)?\b", "recenter"),
    _rule("M", rf"\bcent(?:er|re)(?:ing)?\s+{_DET}{_PATTERNS}", "center the patterns"),
    _rule(
        "M",
        r"\bcent(?:er|re)\s+of\s+mass\s+(?:\w+\s+){0,3}?(?:off|shifted|wrong|misaligned"
        r"|displaced|not\s+(?:at\s+the\s+)?cent(?:er|re|ered|red)\b)",
        "center of mass off",
    ),
    _rule(
        "M",
        rf"\b{_PATTERNS}\s+(?:\w+\s+){{0,3}}?(?:off[-\s]?cent(?:er|re)(?:ed)?"
        r"|not\s+cent(?:er|r)ed|mis-?cent(?:er|r)ed)",
        "patterns off-center",
    ),
    # O smaller patterns
    _rule(
        "O",
        rf"\bbin(?:ning|ned)?\s+{_DET}(?:{_PATTERNS}\s*)?"
        r"(?:by\s+(?:a\s+factor\s+of\s+)?(?:2|two)\b|2\s*x\s*2?|x\s*2)",
        "bin by 2",
    ),
    _rule("O", r"\b(?:2\s*x\s*2|two[-\s]by[-\s]two)\s+binning\b", "2x2 binning"),
    _rule(
        "O",
        rf"\b(?:{_DECREASE}|crop(?:ping)?|downsampl(?:e|ing))\s+{_DET}{_SIZE_NOUN}",
        "reduce pattern size",
    ),
    _rule(
        "O",
        r"\bcrop(?:ping)?\s+(?:\w+\s+){0,3}?(?:to|by)\s+(?:half|50\s*%"
        r"|a\s+factor\s+of\s+(?:2|two))",
        "crop to half",
    ),
    _rule("O", rf"\b(?:crop|downsampl)(?:e|ing)?\s+{_DET}{_PATTERNS}", "crop the patterns"),
    # P regularization
    _rule(
        "P",
        rf"\b(?:{_DECREASE}|{_DISABLE}|weaken(?:ing)?|relax(?:ing)?|less|no)\s+{_DET}"
        rf"(?:\w+\s+){{0,2}}?{_REGULARIZATION}",
        "reduce regularization",
    ),
    _rule(
        "P",
        rf"\b{_REGULARIZATION}\s+(?:\w+\s+)?{_TO_BE}(?:reduced|lowered|decreased"
        r"|removed|disabled|turned\s+off|too\s+(?:strong|high|large))",
        "regularization reduced",
    ),
    # Q orientation
    _rule("Q", rf"\b(?:transpos|flip|rotat|mirror)\w*\s+{_DET}{_PATTERNS}", "transpose/flip"),
    _rule(
        "Q",
        r"\b(?:other|different|alternative|another)\s+(?:diffraction\s+)?"
        r"(?:pattern\s+)?orientations?\b",
        "other orientations",
    ),
    _rule("Q", rf"\borientation\s+of\s+{_DET}{_PATTERNS}", "orientation of the patterns"),
    _rule(
        "Q",
        rf"\b{_PATTERNS}\s+(?:\w+\s+){{0,3}}?(?:transposed|flipped|rotated|mirrored)",
        "patterns transposed",
    ),
    # R affine constraint
    _rule(
        "R",
        rf"\b{_DISABLE}\s+{_DET}affine(?:\s+(?:position\s+)?constraints?)?",
        "affine constraint off",
    ),
    _rule("R", rf"\baffine(?:\s+(?:position\s+)?constraints?)?\s+{_OFF}", "affine constraint off"),
    # U Gaussian noise model
    _rule("U", r"\bgaussian\s+(?:noise\s+)?(?:model|likelihood|loss)\b", "Gaussian model"),
    _rule("U", rf"\b(?:{_ENABLE}|switch\w*\s+to)\s+{_DET}gaussian\b", "use Gaussian"),
    _rule("U", r"\bnoise\s+model\s+(?:\w+\s+){0,2}?gaussian\b", "noise model → Gaussian"),
    # V/X batch selection, W multislice
    _rule("V", r"\bcompact\s+(?:batch\w*|selection|scheme|mode)\b", "compact batches"),
    _rule("V", rf"\b(?:{_ENABLE}|switch\w*\s+to)\s+{_DET}compact\b", "use compact"),
    _rule("V", r"\bbatch\w*\s+(?:\w+\s+){0,3}?compact\b", "batching → compact"),
    _rule("W", r"\bmulti[-\s]?slice\b", "multislice"),
    _rule("X", r"\bsparse\s+(?:batch\w*|selection|scheme|mode)\b", "sparse batches"),
    _rule("X", rf"\b(?:{_ENABLE}|switch\w*\s+to)\s+{_DET}sparse\b", "use sparse"),
    _rule("X", r"\bbatch\w*\s+(?:\w+\s+){0,3}?sparse\b", "batching → sparse"),
)
"""The curated table as text, grouped by letter; every letter A–X has at least one row."""


@functools.cache
def rules() -> tuple[Rule, ...]:
    """The curated table, compiled (case-insensitive) on first use.

    Compiling the ~90 patterns takes tens of milliseconds, too much to spend at import
    time in every CLI start.
    """
    return tuple(
        Rule(letter, re.compile(pattern, re.IGNORECASE), note, when)
        for letter, pattern, note, when in _SPECS
    )


# --- clauses and negation ------------------------------------------------------------

_SENTENCE_BREAK: Final = re.compile(r"[.!?](?=\s|$)|[;\n]")
_CLAUSE_BREAK: Final = re.compile(
    r",(?!\d)|&|\b(?:and|but|or|then|also|plus|while|whereas|so|as\s+well\s+as)\b", re.I
)
_NEGATION_BEFORE: Final = re.compile(
    r"\bnot\b|n't\b|\b(?:dont|doesnt|shouldnt|wont|isnt|cannot|never|without|avoid\w*"
    r"|unnecessary|keep(?:ing)?|leave)\b|\bno\s+(?:need|reason|point)\b|\binstead\s+of\b"
    r"|\brather\s+than\b",
    re.I,
)
_DISMISSAL_AFTER: Final = re.compile(
    r"(?:\bnot|n't)\s+(?:be\s+)?(?:needed|necessary|required|recommended|helpful|useful"
    r"|advised|help\w*)\b|\bunnecessary\b|\bnot\s+worth\b",
    re.I,
)
_VERB: Final = (
    r"(?:enabl(?:e|ing)|turn(?:ing)?\s+on|switch(?:ing)?\s+on|activat(?:e|ing)|us(?:e|ing)"
    r"|add(?:ing)?|appl(?:y|ying)|tr(?:y|ying)|set|change)"
)
_HEAD: Final = re.compile(rf"^(.*?\b(?:{_VERB}|{_DISABLE}|{_INCREASE}|{_DECREASE})\b)", re.I)
_COPULA: Final = re.compile(r"\b(?:is|are|was|were|be|looks?|seems?)\b", re.I)
_WINDOW_WORDS: Final = 4
_CARRY_MAX_WORDS: Final = 4


def _clauses(text: str) -> list[str]:
    """Clauses of ``text``; a short verbless clause borrows its sentence's last verb."""
    text = text.replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", " - ")
    out: list[str] = []
    for sentence in _SENTENCE_BREAK.split(text):
        head = ""
        for part in _CLAUSE_BREAK.split(sentence):
            part = part.strip()
            if not part:
                continue
            found = _HEAD.match(part)
            if found:
                head = found.group(1)
            elif head and _can_borrow(part):
                part = f"{head} {part}"
            out.append(part)
    return out


def _can_borrow(part: str) -> bool:
    return len(part.split()) <= _CARRY_MAX_WORDS and not _COPULA.search(part)


def _negated(clause: str, match: re.Match[str]) -> bool:
    before = " ".join(clause[: match.start()].split()[-_WINDOW_WORDS:])
    after = " ".join(clause[match.end() :].split()[: _WINDOW_WORDS + 1])
    return bool(_NEGATION_BEFORE.search(before) or _DISMISSAL_AFTER.search(after))


def explain(text: str) -> list[tuple[str, str, str]]:
    """Every rule hit as ``(clause, letter, note)``, for debugging the table.

    Hits cancelled by a negation are listed too, their note prefixed with ``"negated: "``;
    ``L`` hits are listed even where other letters make ``letters_from_advice`` drop them.
    """
    hits: list[tuple[str, str, str]] = []
    for clause in _clauses(text):
        for rule in rules():
            match = rule.pattern.search(clause)
            if match is None or (rule.when is not None and not rule.when(match)):
                continue
            note = f"negated: {rule.note}" if _negated(clause, match) else rule.note
            hits.append((clause, rule.letter, note))
    return hits


def letters_from_advice(text: str) -> tuple[str, ...]:
    """Option letters (vocabulary order) that the expert's advice asks for.

    ``L`` only when the advice says nothing needs changing and names no action.
    """
    found = {letter for _, letter, note in explain(text) if not note.startswith("negated: ")}
    if len(found) > 1:
        found.discard(NO_CHANGES)
    return tuple(letter for letter in OPTION_LETTERS if letter in found)
