"""`ptychoagent quickstart`: the benchmark core end to end on the built-in example data.

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
) -> None:
    """Run the benchmark core on the built-in example dataset and say what it did."""
    from rich.console import Console

    from ptychoagent.quickstart import run_quickstart

    run_quickstart(out, seed=seed, n_resamples=n_resamples, console=Console())
