"""Sweep throughput: the benchmark runner against a one-request-at-a-time loop like the
published scripts', on the same backend; and nested deterministic SSFS against example
sets drawn afresh for each k (the prefix cache's share).

1. Runner: ``run_benchmark`` with ``--concurrency`` requests in flight, through the
   gateway. Loop: the same runner with one request in flight (the published scripts
   send one request, wait, send the next). Items/s of each; ratio.
2. Nested: for each sample, k = 1, 3, 5 with one seed: the 3-shot examples are the first
   3 of the 5-shot set, so each prompt starts with the previous one and vLLM's prefix
   cache serves that part. Fresh: the same ks with a different seed per k, so the sets
   do not nest. Both one request at a time; items/s of each; ratio.

Each measurement uses samples of its own (the prefix cache would otherwise carry one
measurement's prompts into the next). Usage::

    .venv/bin/python benchmarks/sweep_throughput.py [--samples 4] [--concurrency 4]
        [--engine-url http://127.0.0.1:8011]

Without ``--engine-url`` it starts the whole stack and stops it. Writes
``runs/bench/sweep_throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.bench.config import parse_config  # noqa: E402
from gateway.bench.runner import run_benchmark  # noqa: E402
from gateway.bench.store import RunStore  # noqa: E402
from ptychoagent.bench import HttpPredictor  # noqa: E402
from ptychoagent.client import AsyncClient  # noqa: E402
from ptychoagent.stack import Stack, StackSettings  # noqa: E402
from ptychobench.data import read_release  # noqa: E402
from ptychobench.prompts import parse_parameters  # noqa: E402
from services.common.database import make_engine  # noqa: E402

DATASET = ROOT / "data" / "ptychobench-sim"
ADAPTER = "smollm2-135m-agent"


def _subset_dataset(ids: list[str], out: Path) -> Path:
    """A release holding only the recommendation test samples ``ids`` (the runner
    takes the first ``limit`` of a split; this picks which)."""
    from ptychobench.data import Dataset, write_release

    dataset = read_release(DATASET)
    keep = [s for s in dataset.samples("recommendation", "test") if s.id in ids]
    subset = Dataset(
        detection={"train": [], "test": []},
        recommendation={"train": list(dataset.samples("recommendation", "train")), "test": keep},
    )
    write_release(subset, out)
    return out


async def _runner(stack: Stack, ids: list[str], concurrency: int, work: Path) -> dict[str, Any]:
    dataset = _subset_dataset(ids, work / f"data-{concurrency}")
    config = parse_config(
        {
            "name": f"throughput-{concurrency}",
            "dataset": str(dataset),
            "tasks": ["recommendation"],
            "models": {"recommendation": [{"name": "sft", "adapter": ADAPTER}]},
            "strategies": ["ssfs"],
            "k": [1, 3],
            "concurrency": concurrency,
        }
    )
    store = RunStore(make_engine(f"sqlite:///{work / 'runs.db'}"))
    store.create_schema()
    async with AsyncClient(stack.gateway_url, stack.api_key, timeout_s=900) as client:
        started = time.perf_counter()
        run = await run_benchmark(
            config, store, HttpPredictor(client), gateway_url=stack.gateway_url, restart=True
        )
        seconds = time.perf_counter() - started
    return {"items": run.done, "failed": run.failed, "seconds": seconds}


async def _nesting(stack: Stack, ids: list[str], nested: bool) -> dict[str, Any]:
    samples = {s.id: s for s in read_release(DATASET).samples("recommendation", "test")}
    count = 0
    tokens = 0
    async with AsyncClient(stack.gateway_url, stack.api_key, timeout_s=900) as client:
        started = time.perf_counter()
        for sample_id in ids:
            s = samples[sample_id]
            for k in (1, 3, 5):
                answer = await client.recommend(
                    {
                        "instrument": s.instrument,
                        "sample_type": s.sample_type,
                        "description": s.caption_obj,
                        "artifacts": list(s.artifacts),
                        "parameters": parse_parameters(s.parameters),
                    },
                    k=k,
                    strategy="ssfs",
                    adapter=ADAPTER,
                    seed=0 if nested else k,
                    sample_id=s.id,
                    idempotency_key=uuid.uuid4().hex,
                )
                count += 1
                tokens += answer.prompt_tokens
        seconds = time.perf_counter() - started
    return {"items": count, "prompt_tokens": tokens, "seconds": seconds}


def measure(stack: Stack, n: int, concurrency: int) -> dict[str, Any]:
    ids = [s.id for s in read_release(DATASET).samples("recommendation", "test")]
    if len(ids) < 4 * n:
        raise SystemExit(f"the test split has {len(ids)} samples; --samples {n} needs {4 * n}")
    groups = [ids[i * n : (i + 1) * n] for i in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        loop_run = asyncio.run(_runner(stack, groups[0], 1, work))
        runner_run = asyncio.run(_runner(stack, groups[1], concurrency, work))
    fresh = asyncio.run(_nesting(stack, groups[2], nested=False))
    nested = asyncio.run(_nesting(stack, groups[3], nested=True))
    result: dict[str, Any] = {
        "samples_per_measurement": n,
        "concurrency": concurrency,
        "loop": loop_run,
        "runner": runner_run,
        "fresh_sets": fresh,
        "nested_ssfs": nested,
    }
    for name in ("loop", "runner", "fresh_sets", "nested_ssfs"):
        part = result[name]
        part["items_per_s"] = part["items"] / part["seconds"]
    result["runner_over_loop"] = runner_run["items_per_s"] / loop_run["items_per_s"]
    result["nested_over_fresh"] = nested["items_per_s"] / fresh["items_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--engine-url", default=None)
    args = parser.parse_args()
    settings = StackSettings(
        state_dir=Path("runs/bench/sweep-throughput-stack"), engine_url=args.engine_url
    )
    with Stack(settings) as stack:
        result = measure(stack, args.samples, args.concurrency)
    out = ROOT / "runs" / "bench" / "sweep_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'measurement':<34}{'items':>6}{'seconds':>9}{'items/s':>9}")
    for name, label in [
        ("loop", "one at a time (published scripts)"),
        ("runner", f"runner, {args.concurrency} in flight"),
        ("fresh_sets", "fresh example sets per k"),
        ("nested_ssfs", "nested deterministic SSFS"),
    ]:
        part = result[name]
        print(f"{label:<34}{part['items']:>6}{part['seconds']:>9.1f}{part['items_per_s']:>9.3f}")
    print(
        f"runner / loop: {result['runner_over_loop']:.2f}×; "
        f"nested / fresh: {result['nested_over_fresh']:.2f}×"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
