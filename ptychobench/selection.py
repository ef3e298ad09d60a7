"""Few-shot example selection: SSFS and RFS, deterministic and nested.

- **SSFS** (sample-specific few-shot): examples whose sample type equals the query's;
  when the pool has fewer than k of them, the rest is filled at random from the other
  examples.
- **RFS** (random few-shot): k examples drawn at random from the pool.

The pool is the training split only. The published code drew from train + test minus
the query, so other test samples could appear as examples; ``paper_parity=True``
reproduces that. The query itself is never an example.

Selection works by ordering the whole eligible pool once and taking the first k, so for
one query and seed the 3-shot examples are the first 3 of the 5-shot ones: prompts of
different k share their prefix. By default the order depends on (strategy, sample type,
seed) only, not on the query, so every query of one sample type sees the same examples
in the same order and an engine's prefix cache serves them; ``vary_per_query=True``
draws a separate order for every query, as the published code did.
"""

from __future__ import annotations

import enum
import hashlib
import random
from collections.abc import Sequence

from ptychobench.data.sample import Sample
from ptychowire.base import Strategy as WireStrategy


class Strategy(enum.StrEnum):
    """The strategies this library implements: the wire's
    (:class:`ptychowire.base.Strategy`) but ``semantic``, which needs the retriever's
    embedding index."""

    SSFS = WireStrategy.SSFS.value
    RFS = WireStrategy.RFS.value


def eligible_pool(
    query: Sample,
    train: Sequence[Sample],
    test: Sequence[Sample] = (),
    *,
    paper_parity: bool = False,
) -> list[Sample]:
    """The examples a query may be shown: the training split, or with ``paper_parity``
    train + test; never the query itself."""
    pool = [*train, *test] if paper_parity else list(train)
    return [sample for sample in pool if sample.id != query.id]


def rng_for(*key: object) -> random.Random:
    """A random generator seeded from a stable hash of ``key`` (not Python's ``hash``,
    which changes between processes)."""
    digest = hashlib.sha256("\x1f".join(map(str, key)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def order_examples(
    query: Sample,
    pool: Sequence[Sample],
    strategy: Strategy | str,
    seed: int,
    *,
    vary_per_query: bool = False,
) -> list[Sample]:
    """The full preference order of ``pool`` for ``query``; the k-shot set is its head.

    The result does not depend on the order of ``pool`` and never contains the query.
    """
    strategy = Strategy(strategy)
    candidates = sorted((s for s in pool if s.id != query.id), key=lambda s: s.id)
    group = query.sample_type if strategy is Strategy.SSFS else "*"
    rng = rng_for(strategy.value, group, seed, query.id if vary_per_query else "")
    if strategy is Strategy.RFS:
        rng.shuffle(candidates)
        return candidates
    same = [s for s in candidates if s.sample_type == query.sample_type]
    other = [s for s in candidates if s.sample_type != query.sample_type]
    rng.shuffle(same)
    rng.shuffle(other)
    return same + other


def select_examples(
    query: Sample,
    train: Sequence[Sample],
    k: int,
    strategy: Strategy | str,
    seed: int = 0,
    *,
    test: Sequence[Sample] = (),
    paper_parity: bool = False,
    vary_per_query: bool = False,
) -> list[Sample]:
    """The k examples for a query (fewer only when the pool is smaller than k)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k == 0:
        return []
    pool = eligible_pool(query, train, test, paper_parity=paper_parity)
    return order_examples(query, pool, strategy, seed, vary_per_query=vary_per_query)[:k]
