"""`ptychoagent run`: the main job (`make run`). Start the stack on the embedded defaults,
run the default sweep through the gateway, print the tables, write the report under
reports/, and stop what was started.

``--dataset DIR`` runs on a user's dataset instead (a release directory or a Label Studio
export, whatever ``ptychobench.data.open_dataset`` opens): the retriever's pool is its
training split, and every sweep's dataset is DIR (so each is a new run, reported under
REPORTS/<name>-<DIR's name>/).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from gateway.bench.config import BenchConfig
    from ptychoagent.stack import StackSettings
    from ptychobench.data import Dataset

CONFIGS = Path("deploy/bench")


def run(
    config: list[Path] = typer.Option(
        None,
        help="A benchmark YAML (default: deploy/bench/default); repeat to run several in turn.",
    ),
    full: bool = typer.Option(False, "--full", help="The full sweep (deploy/bench/full.yaml)."),
    dataset: Path | None = typer.Option(
        None,
        help="Run on this dataset (a release directory or a Label Studio export): its "
        "training split is the retriever's pool and the sweeps score its test split.",
    ),
    reports: Path = typer.Option(Path("reports"), help="Reports go to REPORTS/<name>/."),
    restart: bool = typer.Option(False, help="Forget a stored run of this configuration."),
    n_resamples: int = typer.Option(2000, help="Bootstrap resamples for the CIs."),
) -> None:
    """Start everything, run the sweep through the gateway, write the report, stop."""
    import logging
    import signal

    from rich.console import Console

    from gateway.bench.config import BenchConfigError
    from ptychoagent.cli.bench import run_and_report
    from ptychoagent.stack import Stack, StackError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "alembic"):  # a line per request, per migration step otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    console = Console()
    paths = config or [CONFIGS / ("full.yaml" if full else "default.yaml")]
    try:
        settings, bench_configs = prepare_run(paths, dataset)
    except BenchConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if dataset is not None:
        from ptychobench.data.opening import describe

        console.print(describe(settings.dataset))
    # Ctrl-C and SIGTERM both stop the run cleanly: the runner marks it interrupted (run
    # again to resume) and the stack stops what it started. SIGINT is set explicitly
    # because a shell starts background jobs with it ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Stack(settings) as stack:
            console.print(
                f"stack ready: gateway at {stack.gateway_url}, engine at {stack.engine_url}"
                + (f", VLM engine at {stack.vlm_engine_url}" if stack.vlm_engine_url else "")
            )
            outs = [
                asyncio.run(
                    run_and_report(
                        bench_config,
                        stack.gateway_url,
                        stack.api_key,
                        stack.database_url,
                        reports,
                        restart,
                        n_resamples,
                        console,
                    )
                )
                for bench_config in bench_configs
            ]
    except StackError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
    for out in outs:
        console.print(f"report: {out}/report.md")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def prepare_run(
    config_paths: Sequence[Path], dataset: Path | None = None
) -> tuple[StackSettings, list[BenchConfig]]:
    """The stack's settings and the sweeps' configurations of a run.

    Without ``dataset`` the stack's defaults and the configurations as written. With it
    the stack's dataset (the retriever's pool, the services' example fallback) is that
    dataset, and each configuration's ``dataset`` is it too (so its hash, and the run, is
    new) and its ``name`` gets the dataset's name (so its report does not overwrite the
    committed set's). ``BenchConfigError`` when a configuration cannot be read, or the
    dataset cannot be read or lacks a split a sweep needs.
    """
    from gateway.bench.config import BenchConfigError, load_config
    from ptychoagent.stack import StackSettings
    from ptychobench.data import DataFormatError, open_dataset

    configs = [load_config(path) for path in config_paths]
    if dataset is None:
        return StackSettings(), configs
    root = dataset.resolve()
    try:
        opened = open_dataset(root)
    except DataFormatError as error:
        raise BenchConfigError(f"cannot use {dataset} as the dataset: {error}") from None
    suffix = re.sub(r"[^A-Za-z0-9._-]+", "-", root.stem).strip("-.") or "dataset"
    adapted = []
    for config in configs:
        _check_splits(opened, config, dataset)
        name = f"{config.name}-{suffix}"[:100]
        adapted.append(config.model_copy(update={"dataset": str(root), "name": name}))
    return StackSettings(dataset=root), adapted


def _check_splits(dataset: Dataset, config: BenchConfig, shown: Path) -> None:
    """The split the sweep scores, and the pool's split where a model takes examples."""
    from gateway.bench.config import CLOSED_LOOP, BenchConfigError, open_closed_loop
    from ptychobench.labels import Task
    from services.retriever.settings import RetrieverSettings

    pool = RetrieverSettings.model_fields["pool_split"].default  # the stack keeps it
    for bench_task in config.tasks:
        if bench_task == CLOSED_LOOP:
            open_closed_loop(dataset.root or shown, config)  # a simulated release, or refused
        task = Task.RECOMMENDATION if bench_task == CLOSED_LOOP else Task(bench_task)
        have = dataset.splits(task)
        needed = [config.split]
        if any(k > 0 for k in config.k) and any(m.examples for m in config.models.get(task, [])):
            needed.append(pool)
        for split in needed:
            if not dataset.by_task(task).get(split):
                raise BenchConfigError(
                    f"{shown} has no {task.value} samples in split {split!r} "
                    f"(it has {list(have) or 'none'}; config {config.name!r} needs "
                    f"{' and '.join(repr(s) for s in needed)})"
                )
