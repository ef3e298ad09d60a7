"""Load: N concurrent beamline clients against a gateway on loopback for a bounded time.

Each client, in a closed loop until the time is up, uploads a reconstruction of the
simulated test split for diagnosis (the classifier backend), and every few requests
reads a prediction back, replays a diagnosis under its Idempotency-Key, or posts an
expert's labels as feedback. The gateway and the diagnosis service are started here as
their own processes (``benchmarks/servers.py``) over a fresh SQLite database, or the
PostgreSQL database at ``--database-url``.

Prints the requests, the errors (non-2xx answers and transport failures), p50/p99
latency per kind, and the predictions stored against the 2xx diagnoses: the ids the
gateway answered with and the ids in its database must be the same set (nothing lost,
nothing stored without an answer).

Usage::

    .venv/bin/python benchmarks/load.py [--clients 50] [--seconds 60]
        [--database-url postgresql+psycopg://...]   # default: SQLite in a temp folder
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.servers import Gateway, exit_on_sigterm, git_revision, percentile  # noqa: E402
from ptychobench.data import read_release  # noqa: E402

DATASET = ROOT / "data" / "ptychobench-sim"


@dataclass
class Tally:
    latency: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    answered_ids: set[str] = field(default_factory=set)
    """Prediction ids of the 2xx diagnoses (a replay answers with the same id)."""

    def record(self, kind: str, started: float, status: str) -> None:
        self.latency[kind].append(time.perf_counter() - started)
        self.statuses[kind, status] += 1

    def errors(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if not status.startswith("2"))


def _uploads(count: int) -> list[dict[str, Any]]:
    samples = read_release(DATASET).samples("detection", "test")[:count]
    return [
        {
            "image_base64": base64.b64encode(s.image.read_bytes()).decode(),
            "sample": {"sample_type": s.sample_type, "instrument": s.instrument},
            "labels": list(s.artifacts) or ["No obvious artifacts"],
        }
        for s in samples
    ]


async def _send(
    client: httpx.AsyncClient, tally: Tally, kind: str, method: str, path: str, **kw: Any
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.request(method, path, **kw)
    except httpx.HTTPError as error:
        tally.record(kind, started, type(error).__name__)
        return None
    tally.record(kind, started, str(response.status_code))
    return response


async def _beamline(
    url: str, key: str, uploads: list[dict[str, Any]], deadline: float, seed: int, tally: Tally
) -> None:
    """One beamline client: its own connection, its own sequence of requests."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        turn = 0
        while time.monotonic() < deadline:
            turn += 1
            upload = rng.choice(uploads)
            body = {"image_base64": upload["image_base64"], "sample": upload["sample"]}
            idempotency = {"Idempotency-Key": uuid.uuid4().hex} if turn % 4 == 0 else {}
            response = await _send(
                client, tally, "diagnose", "POST", "/v1/diagnose", json=body, headers=idempotency
            )
            if response is None or response.status_code != 200:
                continue
            prediction = response.json()["prediction_id"]
            tally.answered_ids.add(prediction)
            if idempotency:
                replay = await _send(
                    client, tally, "replay", "POST", "/v1/diagnose", json=body, headers=idempotency
                )
                if replay is not None and replay.status_code == 200:
                    tally.answered_ids.add(replay.json()["prediction_id"])
            if turn % 3 == 0:
                await _send(client, tally, "read", "GET", f"/v1/predictions/{prediction}")
            if turn % 5 == 0:
                labels = {"labels": upload["labels"], "comment": "load test"}
                await _send(
                    client, tally, "feedback", "POST", f"/v1/feedback/{prediction}", json=labels
                )


def _stored_ids(database_url: str) -> set[str]:
    from sqlalchemy import text

    from services.common.database import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id FROM gateway_predictions"))
            return {str(row[0]) for row in rows}
    finally:
        engine.dispose()


async def _run(url: str, key: str, clients: int, seconds: float, seed: int) -> Tally:
    uploads = _uploads(24)
    tally = Tally()
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(_beamline(url, key, uploads, deadline, seed + n, tally) for n in range(clients))
    )
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    exit_on_sigterm()

    with tempfile.TemporaryDirectory(prefix="ptycho-load-") as tmp:
        state = Path(tmp)
        database = args.database_url or f"sqlite:///{state / 'gateway.db'}"
        with Gateway(database, state, workers=args.workers) as gateway:
            key = gateway.key(["predict", "feedback"])
            started = time.monotonic()
            tally = asyncio.run(_run(gateway.url, key, args.clients, args.seconds, args.seed))
            elapsed = time.monotonic() - started
        stored = _stored_ids(database)

    requests = sum(tally.statuses.values())
    lost = tally.answered_ids - stored
    unanswered = stored - tally.answered_ids
    figures: dict[str, Any] = {
        "clients": args.clients,
        "seconds": args.seconds,
        "workers": args.workers,
        "database": database.split(":")[0],
        "seed": args.seed,
        "git_revision": git_revision(),
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "errors": tally.errors(),
        "statuses": {f"{kind} {status}": n for (kind, status), n in sorted(tally.statuses.items())},
        "latency_ms": {
            kind: {
                "p50": round(percentile(values, 50) * 1000, 1),
                "p99": round(percentile(values, 99) * 1000, 1),
            }
            for kind, values in sorted(tally.latency.items())
        },
        "diagnoses_2xx": tally.statuses["diagnose", "200"],
        "predictions_answered": len(tally.answered_ids),
        "predictions_stored": len(stored),
        "lost": len(lost),
        "stored_unanswered": len(unanswered),
    }
    all_latency = [v for values in tally.latency.values() for v in values]
    print(
        f"load: {args.clients} clients x {args.seconds:.0f} s, gateway workers {args.workers}, "
        f"{figures['database']}, git {figures['git_revision']}"
    )
    print(f"requests {requests} ({figures['requests_per_s']}/s), errors {figures['errors']}")
    print(
        f"latency p50 {percentile(all_latency, 50) * 1000:.1f} ms, "
        f"p99 {percentile(all_latency, 99) * 1000:.1f} ms"
    )
    for kind, value in figures["latency_ms"].items():
        print(f"  {kind:9s} p50 {value['p50']:8.1f} ms  p99 {value['p99']:8.1f} ms")
    for name, n in figures["statuses"].items():
        print(f"  {name}: {n}")
    print(
        f"predictions: {figures['diagnoses_2xx']} diagnoses 2xx "
        f"({len(tally.answered_ids)} distinct ids), {len(stored)} stored, "
        f"lost {len(lost)}, stored without an answer {len(unanswered)}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if lost or unanswered:
        sys.exit(1)


if __name__ == "__main__":
    main()
