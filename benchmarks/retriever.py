"""Selection latency and memory of the retriever at pools of 1k, 10k and 100k examples.

Pools are PtychoBench-Sim's recommendation training examples copied under new ids (the
sample types, captions and parameters are real; ``--distinct`` caps how many different
description texts there are, since a real facility's pool repeats descriptions too). For
each pool size and strategy the script times ``RetrieverService.select_sync`` (store
snapshot, selection, fetching the k rows from SQLite) over ``--queries`` queries of
mixed sample types (a tenth of them unseen in the pool) and seeds 0–2, and prints p50 and
p99 with the first (cold) call apart. The baseline, timed in the same run on the same
pool, is ``ptychobench.selection.select_examples`` called per query as the published
scripts did (order the whole pool every time); the ratio is baseline / service.
Memory: the process's resident set before and after loading the 100k pool and building
its semantic index (the embedding model is loaded before the first reading).

    .venv/bin/python benchmarks/retriever.py [--sizes 1000 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from ptychobench.data import Sample, read_release
from ptychobench.labels import Task
from ptychobench.selection import select_examples
from ptychowire.base import Strategy
from ptychowire.retriever import Query, SelectRequest
from services.common.database import make_engine
from services.retriever.semantic import MiniLM, SemanticIndex
from services.retriever.service import RetrieverService
from services.retriever.settings import RetrieverSettings
from services.retriever.store import ExampleStore, NewExample

ROOT = Path(__file__).resolve().parents[1]
UNSEEN = ("Gold nanoparticles", "Zeolite crystal", "Mouse brain tissue", "Shale rock")


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic_pool(base: tuple[Sample, ...], size: int, distinct: int) -> list[NewExample]:
    examples = []
    for i in range(size):
        sample = base[i % len(base)]
        variant = (i // len(base)) % max(1, distinct // len(base))
        caption = f"{sample.caption_obj} (scan {variant})" if variant else sample.caption_obj
        copy = sample.model_copy(update={"id": f"p{i:06d}", "caption_obj": caption, "image": None})
        examples.append(NewExample(copy, Task.RECOMMENDATION))
    return examples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline-queries", type=int, default=20)
    parser.add_argument("--distinct", type=int, default=5000, help="distinct description texts")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()

    dataset = read_release(ROOT / "data" / "ptychobench-sim")
    base = dataset.samples(Task.RECOMMENDATION, "train")
    types = sorted({s.sample_type for s in base})
    rng = random.Random(0)
    queries = [
        Sample(
            id=f"q{i}",
            sample_type=rng.choice(UNSEEN) if i % 10 == 0 else rng.choice(types),
            caption_obj=rng.choice(base).caption_obj,
        )
        for i in range(args.queries)
    ]
    embedder = MiniLM()
    embedder.load()
    print(
        f"{'pool':>7} {'strategy':<9} {'cold ms':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'baseline p50 ms':>16} {'ratio':>7}"
    )
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{tmp}/pool.db")
            store = ExampleStore(engine, refresh_s=60)
            store.create_schema()
            started = time.perf_counter()
            store.upsert(synthetic_pool(base, size, args.distinct))
            ingest_s = time.perf_counter() - started
            rss_before = rss_mib()
            semantic = SemanticIndex(embedder)
            service = RetrieverService(store, RetrieverSettings(database_url="sqlite://"), semantic)
            pool = store.pool(Task.RECOMMENDATION)
            for strategy in Strategy:
                times = []
                for i, query in enumerate(queries):
                    request = SelectRequest(
                        task=Task.RECOMMENDATION,
                        query=Query(sample_type=query.sample_type, description=query.caption_obj),
                        k=args.k,
                        strategy=strategy,
                        seed=i % 3,
                    )
                    started = time.perf_counter()
                    service.select_sync(request)
                    times.append((time.perf_counter() - started) * 1000)
                cold, warm = times[0], times[1:]
                baseline = "-"
                ratio = "-"
                if strategy != "semantic":
                    base_times = []
                    for i, query in enumerate(queries[: args.baseline_queries]):
                        started = time.perf_counter()
                        select_examples(query, pool.samples, args.k, strategy, i % 3)
                        base_times.append((time.perf_counter() - started) * 1000)
                    base_p50 = statistics.median(base_times)
                    baseline = f"{base_p50:.2f}"
                    ratio = f"{base_p50 / statistics.median(warm):.0f}x"
                print(
                    f"{size:>7} {strategy:<9} {cold:>9.1f} {statistics.median(warm):>8.2f} "
                    f"{percentile(warm, 99):>8.2f} {baseline:>16} {ratio:>7}"
                )
            texts = len(semantic.index_for(pool).texts)
            grown = rss_mib() - rss_before
            print(
                f"{size:>7} ingest {ingest_s:.1f} s; pool snapshot + orders + semantic index "
                f"({texts} distinct texts): +{grown:.0f} MiB resident "
                f"({semantic.memory_bytes() / 2**20:.1f} MiB of it embeddings)"
            )
            engine.dispose()


if __name__ == "__main__":
    main()
