"""`ptychoagent run`: the main job (`make run`). Start the stack on the embedded defaults,
run the default sweep through the gateway, print the tables, write the report under
reports/, and stop what was started."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

CONFIGS = Path("deploy/bench")


def run(
    config: list[Path] = typer.Option(
        None,
        help="A benchmark YAML (default: deploy/bench/default); repeat to run several in turn.",
    ),
    full: bool = typer.Option(False, "--full", help="The full sweep (deploy/bench/full.yaml)."),
    reports: Path = typer.Option(Path("reports"), help="Reports go to REPORTS/<name>/."),
    restart: bool = typer.Option(False, help="Forget a stored run of this configuration."),
    n_resamples: int = typer.Option(2000, help="Bootstrap resamples for the CIs."),
) -> None:
    """Start everything, run the sweep through the gateway, write the report, stop."""
    import logging
    import signal

    from rich.console import Console

    from gateway.bench.config import BenchConfigError, load_config
    from ptychoagent.cli.bench import run_and_report
    from ptychoagent.stack import Stack, StackError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "alembic"):  # a line per request, per migration step otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    console = Console()
    paths = config or [CONFIGS / ("full.yaml" if full else "default.yaml")]
    try:
        bench_configs = [load_config(path) for path in paths]
    except BenchConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    # Ctrl-C and SIGTERM both stop the run cleanly: the runner marks it interrupted (run
    # again to resume) and the stack stops what it started. SIGINT is set explicitly
    # because a shell starts background jobs with it ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Stack() as stack:
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
