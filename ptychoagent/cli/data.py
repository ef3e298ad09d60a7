"""`ptychoagent data`: look into datasets in the authors' release layout or a Label Studio
export before using them.

A malformed dataset ends the command with exit code 2 and one line on stderr that names
the file, record and field, so a user can go and fix it; no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from ptychobench.data.dataset import Dataset

app = typer.Typer(
    help="Inspect PtychoBench datasets (release layout or Label Studio export).",
    no_args_is_help=True,
)

EXIT_BAD_DATA = 2


@app.command()
def inspect(
    path: Path = typer.Argument(
        ...,
        exists=True,
        metavar="PATH",
        help="A release directory, or a Label Studio JSON export (or a directory holding "
        "one, with its images in images/).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    allow_missing_images: bool = typer.Option(
        False, "--allow-missing-images", help="Do not fail on image files that are missing."
    ),
    images: Path | None = typer.Option(
        None,
        help="Label Studio export only: the directory holding its images "
        "(default: images/ beside the export, if there).",
    ),
    test_fraction: float = typer.Option(
        0.2, help="Label Studio export only: test share of the paper-style split."
    ),
    seed: int = typer.Option(0, help="Label Studio export only: seed of the split."),
) -> None:
    """Counts per task and split, per label, per sample type and per instrument."""
    from ptychobench.data.errors import DataFormatError
    from ptychobench.data.opening import locate_dataset, open_dataset

    try:
        kind = locate_dataset(path, images).format
        dataset = open_dataset(
            path,
            images,
            test_fraction=test_fraction,
            seed=seed,
            strict_images=not allow_missing_images,
            require_images=False,
        )
    except DataFormatError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_DATA) from None
    counts = dataset.counts()
    if json_output:
        report = {"path": str(path), "format": kind, "counts": counts}
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    _print_tables(dataset, counts, f"{path} ({kind})")


@app.command()
def sheet(
    path: Path = typer.Argument(
        ..., exists=True, help="A release directory or a Label Studio export (as inspect)."
    ),
    out: Path = typer.Option(Path("contact-sheet.png"), help="The PNG to write."),
    per_label: int = typer.Option(4, min=1, max=12, help="Samples per label."),
    seed: int = typer.Option(0, help="Which samples are shown."),
) -> None:
    """A contact sheet: a few samples of each artifact label, one row per label."""
    from ptychobench.data.errors import DataFormatError
    from ptychobench.data.opening import open_dataset
    from ptychobench.sim.sheet import contact_sheet

    try:
        dataset = open_dataset(path)
    except DataFormatError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_DATA) from None
    typer.echo(f"wrote {contact_sheet(dataset, out, per_label, seed)}")


def _print_tables(dataset: Dataset, counts: dict[str, Any], title: str) -> None:
    from rich.console import Console

    from ptychobench.labels import OPTIONS, Task

    console = Console()
    columns = [(task, split) for task in Task for split in dataset.splits(task)]
    overview = _table(f"{title}: samples", ["task", "split", "samples", "label instances"], 2)
    for task, split in columns:
        row = counts[task.value][split]
        overview.add_row(task.value, split, str(row["samples"]), str(row["label_instances"]))
    console.print(overview)
    for task in Task:
        splits = dataset.splits(task)
        if not splits:
            continue
        heading = "artifact label" if task is Task.DETECTION else "option"
        table = _table(f"{task.value}: labels", [heading, *splits])
        for label in counts[task.value][splits[0]]["labels"]:
            shown = label if task is Task.DETECTION else f"{label}) {OPTIONS[label]}"
            table.add_row(shown, *(str(counts[task.value][s]["labels"][label]) for s in splits))
        console.print(table)
    for key, heading in (("sample_types", "sample type"), ("instruments", "instrument")):
        names: dict[str, None] = {}
        for task, split in columns:
            names.update(dict.fromkeys(counts[task.value][split][key]))
        table = _table(f"per {heading}", [heading, *(f"{t.value}/{s}" for t, s in columns)])
        for name in names:
            cells = (str(counts[t.value][s][key].get(name, 0)) for t, s in columns)
            table.add_row(name or "(none)", *cells)
        console.print(table)


def _table(title: str, headings: list[str], text_columns: int = 1) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for index, heading in enumerate(headings):
        table.add_column(heading, justify="left" if index < text_columns else "right")
    return table
