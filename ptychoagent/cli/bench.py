"""`ptychoagent bench CONFIG`: run a benchmark through the gateway and write its report.

The run is kept in the database item by item; run the same configuration again to
resume a stopped run (``--restart`` to begin anew).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ptychoagent.cli.keys import DatabaseOption

if TYPE_CHECKING:
    from rich.console import Console

    from gateway.bench.config import BenchConfig
    from gateway.bench.runner import Progress as RunProgress


def bench(
    config_path: Path = typer.Argument(..., help="The run's YAML configuration."),
    gateway: str = typer.Option(
        "http://127.0.0.1:8100", envvar="PTYCHO_GATEWAY_URL", help="The gateway's URL."
    ),
    api_key: str = typer.Option(
        None,
        envvar="PTYCHO_API_KEY",
        help="A key with the predict scope (and feedback, for feedback: true).",
    ),
    database_url: str = DatabaseOption,
    reports: Path = typer.Option(Path("reports"), help="Reports go to REPORTS/<name>/."),
    restart: bool = typer.Option(False, help="Forget a stored run of this configuration."),
    n_resamples: int = typer.Option(2000, help="Bootstrap resamples for the CIs."),
) -> None:
    """Send every item of CONFIG through the gateway, then print and write the report."""
    from rich.console import Console

    from gateway.bench.config import BenchConfigError, load_config

    console = Console()
    try:
        config = load_config(config_path)
    except BenchConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        out = asyncio.run(
            run_and_report(
                config, gateway, api_key, database_url, reports, restart, n_resamples, console
            )
        )
    except BenchConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    console.print(f"report: {out}")


async def run_and_report(
    config: BenchConfig,
    gateway: str,
    api_key: str | None,
    database_url: str,
    reports: Path,
    restart: bool,
    n_resamples: int,
    console: Console,
) -> Path:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from gateway.bench.baselines import read_dataset
    from gateway.bench.report import build_report, render_tables, write_report
    from gateway.bench.runner import BenchAbortError, run_benchmark, run_record
    from gateway.bench.store import RunChangedError, RunStore
    from ptychoagent.bench import HttpPredictor
    from ptychoagent.client import AsyncClient
    from services.common.database import make_engine

    engine = make_engine(database_url)
    store = RunStore(engine)
    await asyncio.to_thread(store.create_schema)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[f1]}"),
        TimeRemainingColumn(),
        console=console,
    )
    task_id = bar.add_task(config.name, total=None, f1="")

    def show(state: RunProgress) -> None:
        f1 = "  ".join(
            f"{task[:3]} F1 {value:.3f}"
            for task in ("detection", "recommendation")
            if (value := state.micro_f1(task)) is not None
        )
        failed = f"  failed {state.failed}" if state.failed else ""
        bar.update(task_id, total=state.total, completed=state.done + state.failed, f1=f1 + failed)

    try:
        with bar:
            async with AsyncClient(gateway, api_key) as client:
                run = await run_benchmark(
                    config,
                    store,
                    HttpPredictor(client),
                    gateway_url=gateway,
                    restart=restart,
                    progress=show,
                )
    except (BenchAbortError, RunChangedError) as error:
        console.print(f"[red]stopped:[/red] {error}")
        raise SystemExit(1) from None
    items = await asyncio.to_thread(store.items, run.id)
    dataset = await asyncio.to_thread(read_dataset, config.dataset)
    report = build_report(
        items, run_record(run, config.dataset), n_resamples=n_resamples, dataset=dataset
    )
    for table in render_tables(report):
        console.print(table)
    if run.message:
        console.print(f"[yellow]{run.message}[/yellow]")
    out = reports / config.name
    write_report(report, out)
    await asyncio.to_thread(store.finish, run.id, run.status, run.message, str(out))
    engine.dispose()
    return out
