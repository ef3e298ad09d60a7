"""`ptychoagent sim`: generate PtychoBench-Sim with Pty-chi, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def sim(
    out: Path = typer.Option(..., help="Output directory (the release layout is written here)."),
    n: int = typer.Option(391, help="Number of detection samples (the paper has 391)."),
    seed: int = typer.Option(0, help="Seed of everything drawn."),
    workers: int = typer.Option(2, help="Worker processes (one torch thread each)."),
    verify_fraction: float = typer.Option(
        1.0, help="Share of recommendation samples whose fix is checked by reconstructing again."
    ),
    faults: str = typer.Option("", help="Comma-separated fault recipes to use (default: all)."),
    device: str = typer.Option("auto", help="auto (CUDA when torch sees a GPU), cpu or cuda."),
    variation: str = typer.Option(
        "none",
        help="none (the benchmark set), corpus (training data: instrument, scan, dose, "
        "specimen and iterations drawn per sample) or shifted (other beamlines and "
        "sample types: the out-of-domain test set).",
    ),
    test_fraction: float = typer.Option(
        None, help="Share of samples in the test split (default: the paper's 79/391)."
    ),
    recommendation_share: float = typer.Option(
        None,
        help="Share of training samples that also become recommendation samples "
        "(default: the paper's 91/312).",
    ),
) -> None:
    """Simulate, reconstruct and label a dataset; rerun the same command to resume."""
    import pydantic
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ptychobench.sim.faults import FAULTS
    from ptychobench.sim.generate import SimSettings, generate

    console = Console(stderr=True)
    try:
        chosen = tuple(f.strip() for f in faults.split(",") if f.strip()) or tuple(FAULTS)
        shares: dict[str, Any] = (
            {}
            if recommendation_share is None
            else {
                "recommendation_train_share": recommendation_share,
                "recommendation_test_share": max(recommendation_share, 44 / 79),
            }
        )
        if test_fraction is not None:
            shares["test_fraction"] = test_fraction
        settings = SimSettings.model_validate(
            {
                "n": n,
                "seed": seed,
                "verify_fraction": verify_fraction,
                "faults": chosen,
                "variation": variation,
                **shares,
            }
        )
        settings.check()
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    except (ValueError, pydantic.ValidationError) as error:
        console.print(f"[red]error:[/red] {_one_line(error)}")
        raise typer.Exit(2) from None

    tasks: dict[str, TaskID] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        try:
            dataset = generate(settings, out, workers=workers, progress=progress, device=device)
        except ValueError as error:
            console.print(f"[red]error:[/red] {_one_line(error)}")
            raise typer.Exit(2) from None
    counts = {
        task: {k: len(v) for k, v in dataset.by_task(task).items()}
        for task in ("detection", "recommendation")
    }
    console.print(f"wrote {out}: {counts}")


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
