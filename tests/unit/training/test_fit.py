"""The shared training loop's batching."""

from __future__ import annotations

import random

from training.fit import batches


def test_batches_without_a_length_are_the_seeded_shuffle_cut_in_order() -> None:
    items = list(range(20))
    order = list(range(20))
    random.Random(3).shuffle(order)
    assert batches(items, 6, random.Random(3)) == [order[i : i + 6] for i in range(0, 20, 6)]
    assert batches(items, 6, None) == [items[i : i + 6] for i in range(0, 20, 6)]


def test_batches_with_a_length_group_like_lengths_and_keep_every_item_once() -> None:
    lengths = [600, 1200, 2300] * 64  # prompts with 0, 1 and 3 examples
    items = list(range(len(lengths)))

    def padded(groups: list[list[int]]) -> int:
        return sum(len(group) * max(lengths[i] for i in group) for group in groups)

    grouped = batches(items, 8, random.Random(0), length=lambda i: lengths[i])
    plain = batches(items, 8, random.Random(0))
    assert sorted(i for group in grouped for i in group) == items
    assert [len(group) for group in grouped] == [8] * 24
    assert padded(grouped) < 0.75 * padded(plain)  # plain batches pad to 2,300 nearly always
    assert grouped == batches(items, 8, random.Random(0), length=lambda i: lengths[i])
    assert grouped != batches(items, 8, random.Random(1), length=lambda i: lengths[i])
