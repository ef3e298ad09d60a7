"""Database faults under a feedback load: PostgreSQL restarted (fast, then immediate)
and stopped for longer than the gateway's retry budget, while experts post feedback.

The PostgreSQL is this benchmark's own: a throwaway cluster made with Debian's
``initdb`` in a temporary folder, on its own port (as the ``postgres`` user when run as
root), started, restarted and stopped with ``pg_ctl`` and removed at the end; the
machine's shared server is never touched. The gateway and the diagnosis service run as
their own processes (``benchmarks/servers.py``); predictions are made first, then
``--clients`` reviewers post feedback in a loop, each post with a unique comment, while
the faults happen on a schedule.

Prints the posts, the 2xx answers, the feedback rows stored and the client errors by
status, and checks the two promises: a 2xx is never lost (its row is stored), a non-2xx
is never half-stored (no row carries its comment). Exits 1 when either is broken.

Usage::

    .venv/bin/python benchmarks/db_faults.py [--clients 8] [--outage-s 15]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.servers import HOST, Gateway, exit_on_sigterm, free_port, git_revision  # noqa: E402
from ptychobench.data import read_release  # noqa: E402

DATASET = ROOT / "data" / "ptychobench-sim"
RETRY_BUDGET_S = sum(min(0.2 * 2**attempt, 5.0) for attempt in range(5))
"""The gateway's back-off over its 5 retries of a write (gateway.store.retrying)."""


class Cluster:
    """A throwaway PostgreSQL cluster: initdb, pg_ctl start/restart/stop, removed at the
    end. Runs as ``postgres`` when this process is root (initdb refuses root)."""

    def __init__(self, folder: Path) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not versions:
            raise SystemExit("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = versions[-1].parent
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.log = folder / "tools.log"
        self.server_log = folder / "server.log"
        self.as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        """A tool's run; its output (and a started server's, which keeps it open) goes to
        the cluster's log, never to a pipe we would wait on."""
        argv = [str(self.bin / tool), *args]
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        with self.log.open("ab") as log:
            subprocess.run(argv, check=True, stdout=log, stderr=log, cwd=self.folder, timeout=120)

    def create(self) -> None:
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self, mode: str) -> None:
        self._pg_ctl("restart", "-m", mode)

    def _pg_ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses={HOST}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.server_log), "-o", options, *args,
                  "-w", "-t", "60", action)  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop("immediate")


@dataclass
class Posts:
    statuses: Counter[str] = field(default_factory=Counter)
    ok: set[str] = field(default_factory=set)
    """Comments of the posts answered 2xx."""
    refused: set[str] = field(default_factory=set)
    """Comments of the posts answered with an error status."""
    unanswered: set[str] = field(default_factory=set)
    """Comments of the posts that got no answer (the connection failed)."""


def _predictions(url: str, key: str, count: int) -> list[dict[str, Any]]:
    samples = read_release(DATASET).samples("detection", "test")[:count]
    made = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        for sample in samples:
            body = {
                "image_base64": base64.b64encode(sample.image.read_bytes()).decode(),
                "sample": {"sample_type": sample.sample_type, "instrument": sample.instrument},
            }
            response = c.post("/v1/diagnose", json=body)
            response.raise_for_status()
            labels = list(sample.artifacts) or ["No obvious artifacts"]
            made.append({"id": response.json()["prediction_id"], "labels": labels})
    return made


async def _reviewer(
    url: str, key: str, targets: list[dict[str, Any]], stop: asyncio.Event, seed: int, posts: Posts
) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        while not stop.is_set():
            target = rng.choice(targets)
            comment = uuid.uuid4().hex
            body = {"labels": target["labels"], "comment": comment}
            try:
                response = await client.post(f"/v1/feedback/{target['id']}", json=body)
            except httpx.HTTPError as error:
                posts.statuses[type(error).__name__] += 1
                posts.unanswered.add(comment)
                await asyncio.sleep(0.2)
                continue
            posts.statuses[str(response.status_code)] += 1
            if response.is_success:
                posts.ok.add(comment)
            else:
                posts.refused.add(comment)
                await asyncio.sleep(0.2)


async def _faults(
    cluster: Cluster, outage_s: float, settle_s: float, log: Callable[[str], None]
) -> None:
    """The schedule: load, fast restart, load, immediate restart, load, a stop longer
    than the retry budget, start, load."""
    steps: list[tuple[str, Callable[[], None]]] = [
        ("restart -m fast", lambda: cluster.restart("fast")),
        ("restart -m immediate", lambda: cluster.restart("immediate")),
        ("stop", lambda: cluster.stop("fast")),
    ]
    for name, step in steps:
        await asyncio.sleep(settle_s)
        log(name)
        await asyncio.to_thread(step)
    await asyncio.sleep(outage_s)
    log(f"start (after {outage_s:.0f} s down)")
    await asyncio.to_thread(cluster.start)
    await asyncio.sleep(settle_s)


async def _load(
    url: str, key: str, targets: list[dict[str, Any]], cluster: Cluster, args: argparse.Namespace
) -> Posts:
    posts = Posts()
    stop = asyncio.Event()
    started = time.monotonic()

    def log(step: str) -> None:
        print(
            f"  {time.monotonic() - started:6.1f} s  {step}  ({sum(posts.statuses.values())} posts)"
        )

    reviewers = [
        asyncio.create_task(_reviewer(url, key, targets, stop, args.seed + n, posts))
        for n in range(args.clients)
    ]
    try:
        await _faults(cluster, args.outage_s, args.settle_s, log)
    finally:
        stop.set()
        await asyncio.gather(*reviewers)
    log("load stopped")
    return posts


def _stored_comments(database_url: str) -> Counter[str]:
    from sqlalchemy import text

    from services.common.database import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT comment FROM gateway_feedback"))
            return Counter(str(row[0]) for row in rows)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent reviewers")
    parser.add_argument("--predictions", type=int, default=20, help="made before the load")
    parser.add_argument("--settle-s", type=float, default=5.0, help="load between faults")
    parser.add_argument(
        "--outage-s",
        type=float,
        default=3 * RETRY_BUDGET_S,
        help=f"how long PostgreSQL stays down (the retry budget is {RETRY_BUDGET_S:.1f} s)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    exit_on_sigterm()

    with tempfile.TemporaryDirectory(prefix="ptycho-dbfaults-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o711)  # the postgres user reaches its folder inside
        (folder / "pg").mkdir()
        cluster = Cluster(folder / "pg")
        try:
            cluster.create()
            with Gateway(cluster.url, folder) as gateway:
                key = gateway.key(["predict", "feedback"])
                targets = _predictions(gateway.url, key, args.predictions)
                print(
                    f"db_faults: {args.clients} reviewers, PostgreSQL on port {cluster.port} "
                    f"({cluster.bin.parent.name}), down {args.outage_s:.0f} s "
                    f"(retry budget {RETRY_BUDGET_S:.1f} s), git {git_revision()}"
                )
                posts = asyncio.run(_load(gateway.url, key, targets, cluster, args))
            stored = _stored_comments(cluster.url)
        finally:
            cluster.destroy()

    lost = posts.ok - set(stored)
    half_stored = posts.refused & set(stored)
    doubled = [comment for comment, n in stored.items() if n > 1]
    figures = {
        "posts": sum(posts.statuses.values()),
        "2xx": len(posts.ok),
        "rows_stored": sum(stored.values()),
        "client_errors": {s: n for s, n in sorted(posts.statuses.items()) if not s.startswith("2")},
        "unanswered_stored": len(posts.unanswered & set(stored)),
        "lost_2xx": len(lost),
        "non_2xx_stored": len(half_stored),
        "stored_twice": len(doubled),
        "git_revision": git_revision(),
    }
    print(
        f"posts {figures['posts']}, 2xx {figures['2xx']}, rows stored {figures['rows_stored']}, "
        f"client errors {figures['client_errors']}"
    )
    print(
        f"2xx lost {len(lost)}, non-2xx stored {len(half_stored)}, stored twice {len(doubled)}, "
        f"unanswered {len(posts.unanswered)} (of which stored {figures['unanswered_stored']})"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if lost or half_stored or doubled:
        sys.exit(1)


if __name__ == "__main__":
    main()
