from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from ptychobench.data import Sample
from ptychobench.selection import Strategy, eligible_pool, order_examples, select_examples

TYPES = ("Integrated circuit", "Siemens star", "NCM battery", "E. coli")


def make_pool(counts: dict[str, int], prefix: str = "t") -> list[Sample]:
    return [
        Sample(id=f"{prefix}-{kind}-{i}", sample_type=kind)
        for kind, n in counts.items()
        for i in range(n)
    ]


def test_ssfs_prefers_the_query_sample_type() -> None:
    train = make_pool({"Integrated circuit": 5, "Siemens star": 5})
    query = Sample(id="q", sample_type="Siemens star")
    chosen = select_examples(query, train, 3, Strategy.SSFS, seed=1)
    assert [s.sample_type for s in chosen] == ["Siemens star"] * 3


def test_ssfs_fills_from_other_types_when_short() -> None:
    train = make_pool({"Integrated circuit": 6, "Siemens star": 2})
    query = Sample(id="q", sample_type="Siemens star")
    chosen = select_examples(query, train, 5, "ssfs", seed=3)
    assert Counter(s.sample_type for s in chosen) == {"Siemens star": 2, "Integrated circuit": 3}
    assert [s.sample_type for s in chosen[:2]] == ["Siemens star"] * 2


def test_rfs_mixes_sample_types_and_depends_on_seed() -> None:
    train = make_pool({kind: 10 for kind in TYPES})
    query = Sample(id="q", sample_type="E. coli")
    draws = {
        tuple(s.id for s in select_examples(query, train, 7, "rfs", seed)) for seed in range(5)
    }
    assert len(draws) == 5
    kinds = {s.sample_type for s in select_examples(query, train, 7, "rfs", seed=0)}
    assert len(kinds) > 1


def test_the_query_is_never_an_example_and_k0_is_empty() -> None:
    train = make_pool({"Siemens star": 3})
    query = train[0]
    for strategy in Strategy:
        chosen = select_examples(query, train, 7, strategy, seed=0)
        assert query.id not in {s.id for s in chosen}
        assert len(chosen) == 2
    assert select_examples(query, train, 0, "ssfs") == []


def test_training_pool_only_unless_paper_parity() -> None:
    train = make_pool({"Siemens star": 2})
    test = make_pool({"Siemens star": 4}, prefix="x")
    query = test[0]
    ours = select_examples(query, train, 5, "ssfs", test=test)
    assert {s.id for s in ours} <= {s.id for s in train}
    parity = select_examples(query, train, 5, "ssfs", test=test, paper_parity=True)
    assert len(parity) == 5
    assert any(s.id.startswith("x-") for s in parity)
    assert query.id not in {s.id for s in parity}
    assert len(eligible_pool(query, train, test, paper_parity=True)) == 5


@settings(max_examples=60, deadline=None)
@given(
    counts=st.dictionaries(st.sampled_from(TYPES), st.integers(0, 8), min_size=1),
    query_type=st.sampled_from(TYPES),
    seed=st.integers(0, 2**16),
    strategy=st.sampled_from(list(Strategy)),
)
def test_selection_is_deterministic_nested_and_order_independent(
    counts: dict[str, int], query_type: str, seed: int, strategy: Strategy
) -> None:
    train = make_pool(counts)
    query = Sample(id="q", sample_type=query_type)
    sets = {k: select_examples(query, train, k, strategy, seed) for k in (0, 1, 3, 5, 7)}
    for small, large in [(1, 3), (3, 5), (5, 7)]:
        assert sets[large][: len(sets[small])] == sets[small]
    assert select_examples(query, list(reversed(train)), 7, strategy, seed) == sets[7]
    assert len(sets[7]) == min(7, len(train))
    assert len({s.id for s in sets[7]}) == len(sets[7])
    if strategy is Strategy.SSFS:
        same = [s.sample_type == query_type for s in sets[7]]
        assert same == sorted(same, reverse=True)


def test_queries_of_one_type_share_examples_unless_varied() -> None:
    train = make_pool({"Siemens star": 10, "NCM battery": 10})
    q1 = Sample(id="q1", sample_type="Siemens star")
    q2 = Sample(id="q2", sample_type="Siemens star")
    assert select_examples(q1, train, 5, "ssfs") == select_examples(q2, train, 5, "ssfs")
    varied = [select_examples(q, train, 5, "ssfs", vary_per_query=True) for q in (q1, q2)]
    assert varied[0] != varied[1]


def test_order_examples_covers_the_whole_pool() -> None:
    train = make_pool({"Siemens star": 3, "NCM battery": 4})
    query = Sample(id="q", sample_type="NCM battery")
    order = order_examples(query, train, "ssfs", seed=0)
    assert sorted(s.id for s in order) == sorted(s.id for s in train)
