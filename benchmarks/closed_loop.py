"""Closed-loop benchmark (not a test): how often does following a recommender make a
simulated reconstruction better?

On every faulted sample of PtychoBench-Sim's recommendation test split, each arm's
letters are applied to the faulted setup and the same measured data are reconstructed
in-process (``ptychobench.closed_loop.evaluate``); gain = the share of the NRMSE gap to
the clean reconstruction that was closed, *fixed* = gain ≥ 0.3 (the simulator's rule).
Arms: none, random (one implemented letter drawn from the seed and the sample id),
oracle (the truth letters), rule (``ptychobench.baselines.recommendation_rule``), and
each served recommender through the live gateway's ``/v1/recommend``
(``--served NAME=ADAPTER:K[:STRATEGY]``, repeatable; strategy ssfs unless given).

``--stack`` starts the whole stack (``ptychoagent.stack.Stack``: engines, services,
gateway, an API key), runs the served arms through it and stops it at the end; without
``--served`` the arms are the engine configuration's base model and its first adapter
(the SFT agent), each with k = 0 and k = 3 (SSFS).

Each finished (sample, arm) row is appended to ``OUT/rows.jsonl`` at once (fsync'd); run
again with the same configuration and it skips what is there (a served call that failed
is tried again); another configuration in the same OUT is refused (``--restart`` starts
OUT over). The table: per arm n, errors, fix rate [95 % bootstrap CI], median gain,
paired Δ fix rate vs none and vs oracle [CI] and p, mean rounds, reconstructions,
seconds per round (recommending included); ``OUT/closed_loop.{json,md}`` keep it with
the run record (dataset and its samples.jsonl SHA-256, git revision, served arms, seed,
limit).

    python benchmarks/closed_loop.py --limit 4 --out reports/closed-loop-4
    python benchmarks/closed_loop.py --stack --out reports/closed-loop
    python benchmarks/closed_loop.py --gateway http://127.0.0.1:8100 --api-key KEY \
        --served base=base:0 --served sft-k3=smollm2-135m-agent:3
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.bench.runner import git_revision, refused
from ptychobench.closed_loop import (
    BASELINE_ARMS,
    ArmError,
    LettersFor,
    LoopSample,
    baseline_letters,
    open_release,
    render_table,
    row_key,
    run_arms,
    sample_info,
    summarize,
)
from ptychobench.journal import Journal, JournalConfigError

ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger("closed_loop")


@dataclass(frozen=True)
class Served:
    """A recommender behind the gateway."""

    name: str
    adapter: str
    k: int
    strategy: str = "ssfs"

    @classmethod
    def parse(cls, spec: str) -> Served:
        name, _, rest = spec.partition("=")
        adapter, _, tail = rest.partition(":")
        k, _, strategy = tail.partition(":")
        if not name or not adapter or name in BASELINE_ARMS:
            raise SystemExit(f"--served {spec!r}: expected NAME=ADAPTER:K[:STRATEGY]")
        return cls(name, adapter, int(k or 0), strategy or "ssfs")


def default_served(engine_config: Path) -> list[Served]:
    """The engine configuration's base model and first adapter, each at k = 0 and 3."""
    from ptychoagent.engine import load_config

    config = load_config(engine_config)
    models = [("base", config.base_name)]
    if config.adapters:
        models.append(("sft", config.adapters[0].name))
    return [Served(f"{name}-k{k}", adapter, k) for name, adapter in models for k in (0, 3)]


@contextlib.contextmanager
def gateway_for(args: argparse.Namespace) -> Iterator[tuple[str | None, str | None]]:
    """The gateway's URL and key: a stack started here (stopped on leaving), or given."""
    if not args.stack:
        yield args.gateway, args.api_key
        return
    from ptychoagent.stack import Stack, StackSettings

    settings = StackSettings(
        dataset=args.dataset.resolve(),
        engine_config=args.engine_config,
        vlm_engine_config=None,  # nothing here diagnoses an image
    )
    with Stack(settings) as stack:
        log.info("stack ready: gateway at %s", stack.gateway_url)
        yield stack.gateway_url, stack.api_key


class Recommender:
    """The served arms' calls, each keyed so a resumed run's call is replayed."""

    def __init__(self, url: str, api_key: str | None, config_hash: str, seed: int) -> None:
        from ptychoagent.client import Client

        self.client = Client(url, api_key, timeout_s=900.0, retries=3)
        self.config_hash = config_hash
        self.seed = seed

    def letters(self, served: Served, item: LoopSample) -> tuple[list[str], dict[str, Any]]:
        key = hashlib.sha256(f"{served.name}\x1f{item.id}".encode()).hexdigest()[:24]
        started = time.perf_counter()
        answer = self.client.recommend(
            sample_info(item.sample),
            k=served.k,
            strategy=served.strategy,  # type: ignore[arg-type]
            adapter=served.adapter,
            seed=self.seed,
            sample_id=item.id,
            idempotency_key=f"closed-loop-{self.config_hash[:16]}-{key}",
        )
        meta = {
            "recommend_s": time.perf_counter() - started,
            "prediction_id": answer.prediction_id,
            "raw_answer": answer.raw_answer,
        }
        return list(answer.letters), meta

    def close(self) -> None:
        self.client.close()


def letters_source(served: list[Served], recommender: Recommender | None, seed: int) -> LettersFor:
    """Baseline arms' letters from the library; served arms' from the gateway (a call
    that failed after its retries is an :class:`ArmError`; one the gateway refuses, such
    as an unknown adapter, stops the run: every other sample would repeat it)."""
    from ptychoagent.client import GatewayError

    by_name = {s.name: s for s in served}

    def letters_for(arm: str, item: LoopSample) -> tuple[list[str], dict[str, Any]]:
        if arm not in by_name:
            return baseline_letters(arm, item, seed), {}
        assert recommender is not None
        try:
            return recommender.letters(by_name[arm], item)
        except GatewayError as error:
            if refused(error.status):
                raise SystemExit(f"{arm}: the gateway refused: {error}") from None
            raise ArmError(str(error)) from error

    return letters_for


def show(row: Mapping[str, Any]) -> None:
    if row.get("error") is not None:
        print(f"{row['id']} {row['arm']:10s} error: {row['error']}", flush=True)
        return
    print(
        f"{row['id']} {row['arm']:10s} {','.join(row['letters']) or '-':10s} "
        f"applied {','.join(row['applied']) or '-':8s} gain {row['gain']:+.2f} "
        f"({row['seconds']:.1f} s)",
        flush=True,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=ROOT / "data/ptychobench-sim")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gateway", default=None, help="a running gateway's URL")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--stack", action="store_true", help="start (and stop) the stack")
    parser.add_argument("--engine-config", type=Path, default=Path("deploy/vllm/cpu.yaml"))
    parser.add_argument("--served", action="append", default=[], help="NAME=ADAPTER:K[:STRATEGY]")
    parser.add_argument("--out", type=Path, default=Path("reports/closed-loop"))
    parser.add_argument("--restart", action="store_true", help="start OUT over")
    parser.add_argument("--n-resamples", type=int, default=10_000)
    args = parser.parse_args()
    # Pty-chi logs every epoch at INFO: only this script's and the stack's lines are shown
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for ours in ("closed_loop", "ptychoagent.stack"):
        logging.getLogger(ours).setLevel(logging.INFO)

    if args.stack and args.gateway:
        raise SystemExit("--stack starts its own gateway; leave out --gateway")
    served = [Served.parse(spec) for spec in args.served]
    if args.stack and not served:
        served = default_served(ROOT / args.engine_config)
    if served and not (args.stack or args.gateway):
        raise SystemExit("--served needs --gateway URL or --stack")
    if len({s.name for s in served}) != len(served):
        raise SystemExit("--served repeats a name")
    release = open_release(args.dataset, args.split, args.limit)
    config = {
        "dataset": str(args.dataset.resolve()),
        "samples_sha256": release.samples_sha256,
        "split": args.split,
        "limit": args.limit,
        "seed": args.seed,
        "served": [vars(s) for s in served],
        "min_fix_gain": release.min_fix_gain,
        "variation": release.variation,
    }
    arms = [*BASELINE_ARMS, *(s.name for s in served)]
    started = time.time()
    # SIGTERM (``timeout``, ``kill``) unwinds like Ctrl-C: the stack this started is
    # stopped; the rows made so far are on disk already
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        journal = Journal(
            args.out,
            config,
            key=row_key,
            record={"git_revision": git_revision(ROOT), "stack": args.stack},
            restart=args.restart,
        )
        journal.open()
    except JournalConfigError as error:
        raise SystemExit(f"error: {error} (--restart)") from None
    try:
        with gateway_for(args) if served else contextlib.nullcontext((None, None)) as (url, key):
            recommender = Recommender(url, key, journal.hash, args.seed) if url else None
            try:
                log.info("%d rows kept; arms %s", len(journal.rows), ", ".join(arms))
                letters_for = letters_source(served, recommender, args.seed)
                run_arms(release, arms, journal, letters_for, on_row=show)
            finally:
                if recommender is not None:
                    recommender.close()
    finally:
        journal.close()
    rows = list(journal.rows.values())
    summary = summarize(rows, arms, n_resamples=args.n_resamples, seed=args.seed)
    table = render_table(summary)
    run = {
        **config,
        "config_hash": journal.hash,
        "git_revision": git_revision(ROOT),
        "samples": len(release.samples),
        "gateway": "stack" if args.stack else args.gateway,
        "seconds_this_session": round(time.time() - started, 1),
    }
    print(json.dumps(run, indent=2))
    print(table)
    (args.out / "closed_loop.json").write_text(
        json.dumps({"run": run, "summary": summary, "rows": rows}, indent=2)
    )
    (args.out / "closed_loop.md").write_text(
        f"# Closed loop\n\n```json\n{json.dumps(run, indent=2)}\n```\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
