"""Model-free baselines: what a model must beat before it can be said to work.

*Example vote* predicts every label held by at least half of the k examples, and the
task's null label when there are no examples or no label wins. A model shown the same
examples should beat it; if it does not, the model is copying its examples rather than
reading the query.

*Best constant* is the one fixed answer (a label set, or a letter set) that, given to
every item, scores the highest micro-F1 on a set of truths. Chosen on the very items it
is scored on, it is an oracle: an upper bound on what any constant answer scores there.
A model whose interval does not clear it has shown nothing beyond the label frequencies.

The *simple rules* take only what a model is given:

* `sample_type_vote` (detection): the example vote over every training sample of the
  query's sample type (the whole training pool when none has that type).
* `recommendation_rule` (recommendation): the observed artifacts and the current
  parameters mapped to option letters by the physics of what each option does, written
  down once in `ARTIFACT_LETTERS`, never fitted to any data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import comb
from types import MappingProxyType
from typing import Final

from ptychobench.data.sample import Sample
from ptychobench.labels import NO_ARTIFACTS, NO_CHANGES, Task, canonical_order, null_label
from ptychobench.metrics import Answers, label_matrix


def example_vote(examples: Sequence[Sample], task: Task | str) -> list[str]:
    """Labels held by at least half of the examples; the null label if none."""
    votes = Counter(label for example in examples for label in example.labels(task))
    winners = [label for label, n in votes.items() if 2 * n >= len(examples)]
    null = null_label(task)
    concrete = [label for label in winners if label != null]
    return canonical_order(concrete or [null], task)


# ----------------------------------------------------------------------- best constant


@dataclass(frozen=True)
class ConstantAnswer:
    """The best constant answer on a set of truths and its micro-F1 there.

    ``tied`` counts the other answers that score exactly as well (a different set of
    the same size whose labels are equally frequent, or a set of another size).
    """

    labels: tuple[str, ...]
    micro_f1: float
    n_items: int
    tied: int


def best_constant(truths: Answers, vocab: Sequence[str]) -> ConstantAnswer:
    """The label set S maximising micro-F1 when every item is answered S, found exactly.

    Answering S to n items whose truths hold T labels in all gives tp = sum of the
    frequencies of S's labels, fp = n |S| - tp and fn = T - tp, so micro-F1 =
    2 tp / (n |S| + T). For a fixed size |S| that rises with tp, so the best set of each
    size is the most frequent labels; the best over the sizes 1..C is the optimum over
    all 2^C sets. Ties go to the smaller set, then to the labels earlier in ``vocab``.
    With no true labels at all every answer scores 0 and the answer is ``vocab[0]``.
    """
    truth = label_matrix(truths, vocab)
    n, width = truth.shape
    if n == 0:
        raise ValueError("no items to choose a constant answer on")
    if width == 0:
        raise ValueError("an empty vocabulary has no constant answer")
    frequency = [int(v) for v in truth.sum(axis=0)]
    total = sum(frequency)
    order = sorted(range(width), key=lambda j: (-frequency[j], j))
    # micro-F1 of the top-s labels as an exact fraction (2 tp, n s + T); compared by
    # cross-multiplying, so equal scores are equal and ties really go to the smaller set
    scores: list[tuple[int, int]] = []
    tp = 0
    for size in range(1, width + 1):
        tp += frequency[order[size - 1]]
        scores.append((2 * tp, n * size + total))
    best = 0
    for size, (num, den) in enumerate(scores):
        if num * scores[best][1] > scores[best][0] * den:
            best = size
    top_num, top_den = scores[best]
    tied = 0
    for size, (num, den) in enumerate(scores, start=1):
        if num * top_den != top_num * den:
            continue
        # sets of this size with the same tp: swap boundary labels of equal frequency
        boundary = frequency[order[size - 1]]
        inside = sum(frequency[j] == boundary for j in order[:size])
        tied += comb(frequency.count(boundary), inside)
    return ConstantAnswer(
        labels=tuple(vocab[j] for j in sorted(order[: best + 1])),
        micro_f1=top_num / top_den,
        n_items=n,
        tied=tied - 1,
    )


# ----------------------------------------------------------------------- simple rules


def sample_type_vote(sample_type: str, train: Sequence[Sample], task: Task | str) -> list[str]:
    """The detection rule: `example_vote` over every training sample of ``sample_type``
    (over the whole training pool when none has that type)."""
    same = [sample for sample in train if sample.sample_type == sample_type]
    return example_vote(same or train, task)


FEW_ITERATIONS: Final = 100
"""Fewer iterations than this is taken as "stopped before converging" (Pty-chi's LSQML
reconstructions of real data commonly run for hundreds to thousands of iterations)."""

ARTIFACT_LETTERS: Final = MappingProxyType(
    {
        # position errors displace features locally; raster-grid pathology is the
        # periodic form of the same errors: refine the positions
        "Local distortion": ("G",),
        "Grid artifacts": ("G",),
        # a linear phase ramp across the object is a shift of the diffraction patterns'
        # centre (Fourier shift theorem); a slowly varying background is its low-order kin
        "Phase ramp": ("M",),
        "Non-uniform background": ("M",),
        # partial coherence not modelled blurs features and rings around edges: more
        # incoherent probe modes (mixed states)
        "Halo artifacts": ("J",),
        "Blurring": ("J",),
        # streaks along the scan come from a probe that changes between positions:
        # variable probe correction (orthogonal probe relaxation)
        "Line artifacts": ("T",),
        # noise, faint contrast and phase singularities of a solution not yet converged
        "Noisy artifacts": ("K",),
        "Low contrast": ("K",),
        "Singularity artifacts": ("K",),
        # nothing recognisable at all: the patterns may be oriented wrongly, or the
        # solution is far from converged
        "No clear structure": ("Q", "K"),
    }
)
"""Observed artifact → the option letters that address its usual physical cause."""

_ON: Final = re.compile(r"\b(on|yes|true|enabled?|active)\b", re.IGNORECASE)
_OFF: Final = re.compile(r"\b(off|no|none|false|disabled?|inactive)\b", re.IGNORECASE)
_INT: Final = re.compile(r"\d+")
_ITEM: Final = re.compile(r"^\s*(?:[-*•]\s*)?([^:=]+?)\s*[:=]\s*(.+?)\s*$")


def _parameters(text: str) -> dict[str, str]:
    """``name: value`` (or ``name = value``, bulleted or not) lines, names lowercased
    with runs of non-letters folded to one space."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = _ITEM.match(line)
        if match is not None:
            name = " ".join(re.sub(r"[^a-z0-9]+", " ", match[1].lower()).split())
            out.setdefault(name, match[2])
    return out


_ITERATIONS: Final = (("iter", "epoch"),)
_POSITIONS: Final = (("pos",), ("corr", "optimi"))
_OPR: Final = (("opr", "orthogonal probe", "variable probe"),)
"""How the listings people write name a parameter: every group must match, by any of its
alternatives (``num_epochs``, ``nIterations``, ``iters``; ``poscorr``,
``probe_position_options.optimizable``; ``nmodes_opr``, ...)."""


def _find(
    parameters: dict[str, str], groups: tuple[tuple[str, ...], ...], avoid: Iterable[str] = ()
) -> str | None:
    avoided = tuple(avoid)
    for name, value in parameters.items():
        matches = all(any(word in name for word in group) for group in groups)
        if matches and not any(word in name for word in avoided):
            return value
    return None


def _switch(value: str | None) -> bool | None:
    """True for on, False for off, None when unstated or unclear."""
    if value is None:
        return None
    if value.strip().isdigit():
        return int(value) != 0
    on, off = _ON.search(value) is not None, _OFF.search(value) is not None
    return on if on != off else None


def _number(value: str | None) -> int | None:
    match = _INT.search(value or "")
    return None if match is None else int(match[0])


def recommendation_rule(artifacts: Iterable[str], parameters: str = "") -> list[str]:
    """The recommendation rule: letters from the observed artifacts (`ARTIFACT_LETTERS`),
    adjusted by what the parameter listing says is already set.

    - position correction already on: no G (nothing more to enable);
    - line artifacts with OPR modes already on: I (more OPR modes) instead of T;
    - iterations stated and fewer than `FEW_ITERATIONS`: K;
    - nothing to change and nothing observed: L ("No changes needed"); artifacts
      observed but every remedy already in place: K (let it converge further).
    """
    observed = [a for a in dict.fromkeys(artifacts) if a != NO_ARTIFACTS]
    listing = _parameters(parameters)
    positions = _switch(_find(listing, _POSITIONS, avoid=("affine",)))
    opr_text = _find(listing, _OPR)
    opr = _number(opr_text)
    if opr is None:
        opr = {True: 1, False: 0, None: None}[_switch(opr_text)]
    iterations = _number(_find(listing, _ITERATIONS, avoid=("start", "probe", "every")))
    letters: set[str] = set()
    for artifact in observed:
        for letter in ARTIFACT_LETTERS.get(artifact, ()):
            if letter == "G" and positions is True:
                continue
            if letter == "T" and opr is not None and opr > 0:
                letter = "I"
            letters.add(letter)
    if iterations is not None and iterations < FEW_ITERATIONS:
        letters.add("K")
    if not letters:
        letters.add("K" if observed else NO_CHANGES)
    return canonical_order(letters, Task.RECOMMENDATION)


# ----------------------------------------------------------------------- against a floor


def clears(ci_low: float | None, floor: float) -> bool:
    """Whether a system's interval clears a baseline: its lower bound lies strictly
    above the baseline's score. No interval (nothing scored) clears nothing."""
    return ci_low is not None and ci_low > floor


__all__ = [
    "ARTIFACT_LETTERS",
    "FEW_ITERATIONS",
    "ConstantAnswer",
    "best_constant",
    "clears",
    "example_vote",
    "recommendation_rule",
    "sample_type_vote",
]
