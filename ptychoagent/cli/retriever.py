"""`ptychoagent retriever …`: the retriever's example store."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The retriever's example store (few-shot pools).", no_args_is_help=True)

DATABASE_HELP = (
    "Database URL (default: RETRIEVER_DATABASE_URL, else sqlite:///runs/ptychoagent.db)."
)


def _store(database_url: str | None):  # type: ignore[no-untyped-def]
    from services.common.database import make_engine
    from services.retriever.settings import RetrieverSettings
    from services.retriever.store import ExampleStore

    url = database_url or RetrieverSettings().database_url
    return ExampleStore(make_engine(url)), url


@app.command()
def ingest(
    directory: Path = typer.Argument(
        ..., help="A release directory or a Label Studio export (as `data inspect`).", exists=True
    ),
    database_url: str | None = typer.Option(None, help=DATABASE_HELP),
    replace: bool = typer.Option(
        False, "--replace", help="Remove the examples of other datasets (feedback stays)."
    ),
) -> None:
    """Add (or update) every example of a dataset: both tasks, all splits."""
    from services.retriever.ingest import ingest as run_ingest

    store, url = _store(database_url)
    try:
        counts = run_ingest(store, directory, replace=replace)
    except (OSError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(
        f"{directory} → {url}: {counts['inserted']} inserted, {counts['updated']} updated"
        + (f", {counts['removed']} removed" if replace else "")
    )
    for row in store.counts():
        typer.echo(f"  {row['task']:<15} {row['split']:<6} {row['source']:<9} {row['count']:>7}")
