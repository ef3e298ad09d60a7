"""Choosing examples from a pool: SSFS and RFS as ``ptychobench.selection`` defines them,
fast enough for pools of 100k.

The full preference order of a pool depends on (strategy, sample type, seed) only, not
on the query, unless the query is itself in the pool (then removing it changes the
draw). :class:`OrderCache` keeps recent orders, so a query that is not in the pool costs
a dictionary lookup and a scan of the order's head; a query that is in the pool is
ordered afresh by ``ptychobench.selection.order_examples``. Either way the answer is
exactly ``select_examples(query, pool, k, strategy, seed)``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ptychobench.data import Sample
from ptychobench.selection import Strategy, order_examples
from services.retriever.store import Pool


class OrderCache:
    """Recent preference orders (example ids), least recently used dropped first."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._orders: OrderedDict[tuple[object, ...], tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def select(self, pool: Pool, query: Sample, k: int, strategy: Strategy, seed: int) -> list[str]:
        """The ids of the k examples for ``query`` (fewer only if the pool is smaller)."""
        if k == 0:
            return []
        if query.id in pool.by_id:
            return [s.id for s in order_examples(query, pool.samples, strategy, seed)[:k]]
        group = query.sample_type if strategy is Strategy.SSFS else "*"
        key = (pool.task, pool.split, pool.stamp, strategy, group, seed)
        with self._lock:
            order = self._orders.get(key)
            if order is not None:
                self._orders.move_to_end(key)
                self.hits += 1
        if order is None:
            order = tuple(s.id for s in order_examples(query, pool.samples, strategy, seed))
            with self._lock:
                self.misses += 1
                self._orders[key] = order
                while len(self._orders) > self.size:
                    self._orders.popitem(last=False)
        return list(order[:k])
