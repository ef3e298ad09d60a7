"""`ptychoagent quickstart`: the benchmark core end to end on PtychoBench-Sim.

This is what `make run` runs until the model services exist. It makes the example
dataset, writes and re-reads it in the release layout, builds every k-shot conversation
the services would send, runs the model-free example-vote baseline, and scores it with
bootstrap CIs under both scorings.
"""

from __future__ import annotations

from pathlib import Path

import typer


def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), help="Where to write everything."),
    seed: int = typer.Option(0, help="Seed for the data, the selection and the bootstrap."),
    n_resamples: int = typer.Option(10_000, help="Bootstrap resamples."),
    dataset: Path | None = typer.Option(
        None, help="A release directory (default: the committed PtychoBench-Sim)."
    ),
    toy: bool = typer.Option(False, "--toy", help="Use the small toy example set instead."),
) -> None:
    """Run the benchmark core on PtychoBench-Sim (or the toy set) and say what it did."""
    from rich.console import Console

    from ptychoagent.quickstart import DEFAULT_DATASET, run_quickstart

    source = None if toy else (dataset or DEFAULT_DATASET)
    if source is not None and not (source / "annotations").is_dir():
        if dataset is not None:
            typer.echo(f"error: {dataset} is not a release directory (no annotations/)", err=True)
            raise typer.Exit(2)
        source = None  # an installed package has no committed dataset: use the toy set
    run_quickstart(out, seed=seed, n_resamples=n_resamples, console=Console(), dataset_dir=source)
