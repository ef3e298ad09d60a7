"""Model-free baselines: what the few-shot examples alone carry.

*Example vote* predicts every label held by at least half of the k examples, and the
task's null label when there are no examples or no label wins. A model shown the same
examples should beat it; if it does not, the model is copying its examples rather than
reading the query.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ptychobench.data.sample import Sample
from ptychobench.labels import Task, canonical_order, null_label


def example_vote(examples: Sequence[Sample], task: Task | str) -> list[str]:
    """Labels held by at least half of the examples; the null label if none."""
    votes = Counter(label for example in examples for label in example.labels(task))
    winners = [label for label, n in votes.items() if 2 * n >= len(examples)]
    null = null_label(task)
    concrete = [label for label in winners if label != null]
    return canonical_order(concrete or [null], task)
