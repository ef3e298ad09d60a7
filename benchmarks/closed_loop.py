"""Closed-loop benchmark (not a test): how often does following a recommender make a
simulated reconstruction better?

On every faulted sample of PtychoBench-Sim's recommendation test split, each arm's
letters are applied to the faulted setup (``ptychobench.sim.faults.apply_fix``, as the
simulator's verify step does), the same measured data are reconstructed in-process, and
the NRMSE to the true object is compared with the faulted and the clean reconstruction's:
gain = ``fix_gain`` (the share of the gap closed); *fixed* = gain ≥ 0.3 (the simulator's
rule). Arms: none, random (seeded, one implemented letter), oracle (the truth letters),
rule (``ptychobench.baselines.recommendation_rule``), and with ``--gateway`` each served
recommender through the live ``/v1/recommend`` (``--served NAME=ADAPTER:K`` repeatable).

    python benchmarks/closed_loop.py --limit 4 --out reports/closed-loop
    python benchmarks/closed_loop.py --gateway http://127.0.0.1:8100 --api-key KEY \
        --served base=base:0 --served base-k3=base:3 --served sft=sft:0 --served sft-k3=sft:3
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

IMPLEMENTED = ("G", "H", "J", "K", "M", "N", "P", "Q", "T", "U")


def _ci(values: list[float], seed: int = 0, n: int = 10_000) -> tuple[float, float]:
    if not values:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    data = np.asarray(values, dtype=float)
    means = data[rng.integers(0, len(data), (n, len(data)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _paired(a: list[float], b: list[float], seed: int = 0, n: int = 10_000) -> dict[str, float]:
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n, len(diff)))].mean(axis=1)
    return {
        "delta": float(diff.mean()),
        "ci_low": float(np.percentile(means, 2.5)),
        "ci_high": float(np.percentile(means, 97.5)),
        "p_not_better": float((means <= 0).mean()),
    }


def _served(gateway: str, api_key: str | None, adapter: str, k: int, record: dict[str, Any]):
    from ptychoagent.client import Client

    with Client(gateway, api_key) as client:
        answer = client.recommend(
            sample_type=record["sample_type"],
            instrument=record["instrument"],
            artifacts=record["artifacts"],
            parameters=record["parameters"],
            adapter=adapter,
            k=k,
        )
    return list(answer.letters)


def main() -> None:
    from ptychobench.baselines import recommendation_rule
    from ptychobench.prompts import format_parameters
    from ptychobench.sim.experiment import measure, run_setup, scene_for
    from ptychobench.sim.faults import apply_fix
    from ptychobench.sim.generate import PlanItem, build_setups, fix_gain

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/ptychobench-sim"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gateway", default=None)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--served", action="append", default=[], help="NAME=ADAPTER:K")
    parser.add_argument("--out", type=Path, default=Path("reports/closed-loop"))
    args = parser.parse_args()

    split = args.dataset / "annotations/parameter_recommendation_split/test.json"
    ids = [s["metadata"]["id"] for s in json.loads(split.read_text())]
    records = {}
    with (args.dataset / "samples.jsonl").open() as lines:
        for line in lines:
            r = json.loads(line)
            records[r["id"]] = r
    samples = [records[i] for i in ids if records[i]["injected_faults"]]
    samples = samples[: args.limit] if args.limit else samples
    rng = random.Random(args.seed)
    arms = ["none", "random", "oracle", "rule"] + [s.split("=")[0] for s in args.served]
    rows: list[dict[str, Any]] = []
    for record in samples:
        item = PlanItem(
            record["index"], record["id"], record["sample_type"], record["instrument"], ()
        )
        data, _, setup = build_setups(item, tuple(record["injected_faults"]), record["seed"], "cpu")
        measured = measure(data, setup)
        fault_nrmse = record["metrics"]["fault"]["nrmse"]
        clean_nrmse = record["metrics"]["clean"]["nrmse"]
        letters_of = {
            "none": [],
            "random": [rng.choice(IMPLEMENTED)],
            "oracle": list(record["letters"]),
            "rule": recommendation_rule(
                record["artifacts"], format_parameters(record["parameters"])
            ),
        }
        for spec in args.served:
            if args.gateway is None:
                raise SystemExit("--served needs --gateway")
            name, _, rest = spec.partition("=")
            adapter, _, k = rest.partition(":")
            letters_of[name] = _served(args.gateway, args.api_key, adapter, int(k or 0), record)
        for arm in arms:
            letters = letters_of[arm]
            fixed, applied = setup, []
            for letter in letters:
                try:
                    fixed = apply_fix(fixed, letter, scene_for(data, setup))
                    applied.append(letter)
                except ValueError:
                    pass
            started = time.perf_counter()
            if applied:
                try:
                    after = run_setup(data, fixed, measured)[0].metrics["nrmse"]
                except (RuntimeError, ValueError):
                    after = float("inf")
                recons = 1
            else:
                after, recons = fault_nrmse, 0
            gain = max(fix_gain(fault_nrmse, after, clean_nrmse), -1.0)
            rows.append(
                {
                    "id": record["id"],
                    "arm": arm,
                    "letters": letters,
                    "applied": applied,
                    "nrmse_fault": fault_nrmse,
                    "nrmse_clean": clean_nrmse,
                    "nrmse_after": after,
                    "gain": gain,
                    "fixed": gain >= 0.3,
                    "rounds": 1 if applied else 0,
                    "reconstructions": recons,
                    "seconds": time.perf_counter() - started,
                }
            )
            print(
                f"{record['id']} {arm:8s} {','.join(letters) or '-':8s} gain {gain:+.2f}",
                flush=True,
            )
    summary = {}
    by_arm = {arm: [r for r in rows if r["arm"] == arm] for arm in arms}
    for arm, got in by_arm.items():
        fixed = [float(r["fixed"]) for r in got]
        summary[arm] = {
            "n": len(got),
            "fix_rate": statistics.mean(fixed) if fixed else float("nan"),
            "fix_rate_ci": _ci(fixed, args.seed),
            "median_gain": statistics.median(r["gain"] for r in got) if got else float("nan"),
            "vs_none": _paired(fixed, [float(r["fixed"]) for r in by_arm["none"]], args.seed),
            "vs_oracle": _paired(fixed, [float(r["fixed"]) for r in by_arm["oracle"]], args.seed),
            "rounds": statistics.mean(r["rounds"] for r in got) if got else 0,
            "reconstructions": sum(r["reconstructions"] for r in got),
            "seconds_per_round": statistics.mean(
                [r["seconds"] for r in got if r["rounds"]] or [0.0]
            ),
        }
    lines = [
        "| arm | n | fix rate [95 % CI] | median gain | Δ vs none [CI] | Δ vs oracle [CI] "
        "| recons | s/round |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, s in summary.items():
        lo, hi = s["fix_rate_ci"]
        vn, vo = s["vs_none"], s["vs_oracle"]
        lines.append(
            f"| {arm} | {s['n']} | {s['fix_rate']:.2f} [{lo:.2f}, {hi:.2f}] "
            f"| {s['median_gain']:+.2f} "
            f"| {vn['delta']:+.2f} [{vn['ci_low']:+.2f}, {vn['ci_high']:+.2f}] "
            f"| {vo['delta']:+.2f} [{vo['ci_low']:+.2f}, {vo['ci_high']:+.2f}] "
            f"| {s['reconstructions']} | {s['seconds_per_round']:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    run = {
        "dataset": str(args.dataset),
        "limit": args.limit,
        "seed": args.seed,
        "gateway": args.gateway,
        "served": args.served,
    }
    (args.out / "closed_loop.json").write_text(
        json.dumps({"run": run, "summary": summary, "rows": rows}, indent=2)
    )
    (args.out / "closed_loop.md").write_text(f"# Closed loop\n\n{json.dumps(run)}\n\n{table}\n")


if __name__ == "__main__":
    main()
