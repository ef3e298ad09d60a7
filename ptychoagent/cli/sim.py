"""`ptychoagent sim`: generate PtychoBench-Sim with Pty-chi, resumably;
`ptychoagent sim snapshot`: a release of what a run still going has finished;
`ptychoagent sim export-experiment`: write the raw experiment of any sample it made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    invoke_without_command=True,
    help="Generate PtychoBench-Sim (ptychoagent sim --out DIR …), or export the raw "
    "experiment of its samples (ptychoagent sim export-experiment DIR ID …).",
)


@app.callback()
def sim(
    ctx: typer.Context,
    out: Path | None = typer.Option(
        None, help="Output directory (the release layout is written here)."
    ),
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
    standing_share: float = typer.Option(
        0.0,
        help="Share of sample types measured as one session with a standing fault that "
        "most of its samples show (default 0: faults drawn per sample, independent of "
        "the sample type).",
    ),
) -> None:
    """Simulate, reconstruct and label a dataset; rerun the same command to resume."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        typer.echo("error: Missing option '--out' (the directory to generate into).", err=True)
        raise typer.Exit(2)
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
                "standing_share": standing_share,
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


@app.command("export-experiment")
def export_experiment(
    run: Path = typer.Argument(..., help="A simulator run (ptychoagent sim --out DIR)."),
    samples: list[str] = typer.Argument(None, help="Sample ids (default: those of --split)."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="An .h5 file (one sample), or a directory that gets <id>.h5 per sample.",
    ),
    split: str = typer.Option(
        "",
        help="Export every sample of TASK/SPLIT of the run's release, e.g. "
        "recommendation/test (the closed-loop benchmark's samples).",
    ),
    setup: str = typer.Option(
        "fault", help="fault (as the sample was diagnosed) or clean (set up as a careful user)."
    ),
) -> None:
    """Write the raw experiment of simulated samples as HDF5 (patterns, positions,
    starting probe, geometry, current options and, in /truth, the true object), rebuilt
    from the seeds the run recorded (docs/reconstructor.md has the layout)."""
    from ptychobench.experiment_io import write_experiment
    from ptychobench.sim.export import SampleNotFoundError
    from ptychobench.sim.export import export_experiment as export

    ids = list(samples or [])
    try:
        if setup not in ("fault", "clean"):
            raise ValueError(f"--setup must be fault or clean, got {setup!r}")
        if split:
            ids += _split_ids(run, split)
        if not ids:
            raise ValueError("name sample ids or give --split TASK/SPLIT")
        single = len(ids) == 1 and out.suffix in (".h5", ".hdf5")
        for sample in ids:
            experiment = export(run, sample, setup)  # type: ignore[arg-type]
            suffix = "" if setup == "fault" else f"-{setup}"
            target = out if single else out / f"{sample}{suffix}.h5"
            target.parent.mkdir(parents=True, exist_ok=True)
            write_experiment(target, experiment)
            typer.echo(
                f"{target}: {experiment.n_positions} patterns "
                f"{experiment.patterns.shape[1]}x{experiment.patterns.shape[2]}, "
                f"object {experiment.object_shape[0]}x{experiment.object_shape[1]}, "
                f"{experiment.config.num_epochs} epochs"
            )
    except (ValueError, FileNotFoundError, KeyError, SampleNotFoundError) as error:
        typer.echo(f"error: {_one_line(error)}", err=True)
        raise typer.Exit(2) from None


@app.command("snapshot")
def snapshot(
    run: Path = typer.Argument(
        ..., help="A simulator run, finished or not (ptychoagent sim --out DIR)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Where the snapshot's release is written."),
    ids: Path | None = typer.Option(
        None,
        help="A file of sample ids, one per line: make that snapshot again "
        "(data/corpus/snapshots/*.txt) instead of one of everything finished.",
    ),
    write_ids: Path | None = typer.Option(
        None, help="Also write the snapshot's sample ids to this file (to make it again)."
    ),
) -> None:
    """Write a release of the samples a run has finished so far, to train on a corpus
    while it is still being made. Its split is drawn over those samples, and fixes not
    yet verified keep their recipe's letters (docs/corpus.md)."""
    from ptychobench.sim.generate import snapshot as write_snapshot

    try:
        listed = None if ids is None else ids.read_text().split()
        dataset = write_snapshot(run, out, listed)
    except (ValueError, FileExistsError, OSError) as error:
        typer.echo(f"error: {_one_line(error)}", err=True)
        raise typer.Exit(2) from None
    counts = {
        task: {k: len(v) for k, v in dataset.by_task(task).items()}
        for task in ("detection", "recommendation")
    }
    if write_ids is not None:
        made = sorted(s.id for split in dataset.detection.values() for s in split)
        write_ids.parent.mkdir(parents=True, exist_ok=True)
        write_ids.write_text("\n".join(made) + "\n")
    typer.echo(f"wrote {out}: {counts}")


def _split_ids(run: Path, split: str) -> list[str]:
    from ptychobench.data import read_release

    task, _, name = split.partition("/")
    if not name:
        raise ValueError(f"--split must be TASK/SPLIT (e.g. recommendation/test), got {split!r}")
    return [s.id for s in read_release(run, strict_images=False).samples(task, name)]
