"""Gateway overhead: a recommendation through gateway → agent → vLLM against the same
request sent straight to vLLM.

Both paths send the identical chat request: the direct path builds it with the agent's
own code (the paper's prompt, the answer constraint, the agent's token limit) and sends
it with the services' backend client. Every prompt is sent once first, so both paths
meet a warm prefix cache, and the two paths alternate query by query, so drift on a
shared machine hits both alike. Prints p50/p99 of each and the ratios.

Usage::

    .venv/bin/python benchmarks/gateway_overhead.py [--queries 8] [--rounds 3]
        [--engine-url http://127.0.0.1:8011]   # an engine that runs already

Without ``--engine-url`` it starts the whole stack (engine included) and stops it.
Writes ``runs/bench/gateway_overhead.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ptychoagent.client import Client  # noqa: E402
from ptychoagent.stack import Stack, StackSettings  # noqa: E402
from ptychobench.data import read_release  # noqa: E402
from ptychobench.labels import Task  # noqa: E402
from ptychobench.prompts import (  # noqa: E402
    answer_regex,
    build_conversation,
    parse_parameters,
    recommendation_prompt,
)
from ptychowire.agent import RecommendRequest, SampleInfo  # noqa: E402
from services.common.backend import BackendClient  # noqa: E402
from services.common.settings import BackendSettings  # noqa: E402
from services.ptycho_agent.service import query_sample  # noqa: E402
from services.ptycho_agent.settings import AgentSettings  # noqa: E402

ADAPTER = "smollm2-135m-agent"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _requests(n: int) -> list[RecommendRequest]:
    samples = read_release(ROOT / "data" / "ptychobench-sim").samples("recommendation", "test")
    return [
        RecommendRequest(
            sample=SampleInfo(
                instrument=s.instrument,
                sample_type=s.sample_type,
                description=s.caption_obj,
                artifacts=list(s.artifacts),
                parameters=parse_parameters(s.parameters),
            ),
            sample_id=s.id,
            k=0,
            adapter=ADAPTER,
        )
        for s in samples[:n]
    ]


async def _direct(backend: BackendClient, request: RecommendRequest) -> float:
    agent = AgentSettings()
    conversation = build_conversation(
        Task.RECOMMENDATION, recommendation_prompt(query_sample(request)), []
    )
    started = time.perf_counter()
    await backend.chat(
        conversation.messages,
        model=ADAPTER,
        max_tokens=agent.max_tokens,
        seed=request.seed,
        regex=answer_regex(Task.RECOMMENDATION, agent.max_letters),
    )
    return time.perf_counter() - started


def _through(client: Client, request: RecommendRequest) -> float:
    started = time.perf_counter()
    client.recommend(
        request.sample.model_dump(mode="json"),
        k=0,
        adapter=ADAPTER,
        sample_id=request.sample_id,
        idempotency_key=uuid.uuid4().hex,  # a new prediction each time: no replay
    )
    return time.perf_counter() - started


def measure(stack: Stack, queries: int, rounds: int) -> dict[str, Any]:
    requests = _requests(queries)
    backend = BackendClient(BackendSettings(base_url=stack.engine_url, max_retries=0))
    direct: list[float] = []
    through: list[float] = []
    with Client(stack.gateway_url, stack.api_key) as client:
        loop = asyncio.new_event_loop()
        try:
            for request in requests:  # warm: every prompt is in the prefix cache after this
                loop.run_until_complete(_direct(backend, request))
            for _ in range(rounds):
                for request in requests:
                    direct.append(loop.run_until_complete(_direct(backend, request)))
                    through.append(_through(client, request))
        finally:
            loop.run_until_complete(backend.aclose())
            loop.close()
    summary = {
        "queries": queries,
        "rounds": rounds,
        "direct_p50_s": statistics.median(direct),
        "direct_p99_s": _percentile(direct, 99),
        "gateway_p50_s": statistics.median(through),
        "gateway_p99_s": _percentile(through, 99),
    }
    summary["p50_ratio"] = summary["gateway_p50_s"] / summary["direct_p50_s"]
    summary["p99_ratio"] = summary["gateway_p99_s"] / summary["direct_p99_s"]
    summary["p50_overhead_ms"] = 1000 * (summary["gateway_p50_s"] - summary["direct_p50_s"])
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engine-url", default=None)
    args = parser.parse_args()
    settings = StackSettings(
        state_dir=Path("runs/bench/gateway-overhead-stack"), engine_url=args.engine_url
    )
    with Stack(settings) as stack:
        summary = measure(stack, args.queries, args.rounds)
    out = ROOT / "runs" / "bench" / "gateway_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'path':<28}{'p50 (s)':>10}{'p99 (s)':>10}")
    print(
        f"{'straight to vLLM':<28}{summary['direct_p50_s']:>10.3f}{summary['direct_p99_s']:>10.3f}"
    )
    print(
        f"{'gateway → agent → vLLM':<28}{summary['gateway_p50_s']:>10.3f}"
        f"{summary['gateway_p99_s']:>10.3f}"
    )
    print(
        f"ratio p50 {summary['p50_ratio']:.3f}, p99 {summary['p99_ratio']:.3f}; "
        f"overhead at p50 {summary['p50_overhead_ms']:.1f} ms "
        f"({args.queries} queries × {args.rounds} rounds, k = 0, warm prefix cache)"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
