"""`ptychoagent keys …`: the gateway's API keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from gateway.keys import KeyStore

app = typer.Typer(
    help="The gateway's API keys (scopes: predict, feedback, admin).", no_args_is_help=True
)

DEFAULT_DATABASE_URL = "sqlite:///runs/ptychoagent.db"
DatabaseOption = typer.Option(
    DEFAULT_DATABASE_URL,
    "--database-url",
    envvar="GATEWAY_DATABASE_URL",
    help="The gateway's database (default: GATEWAY_DATABASE_URL, else the local SQLite file).",
)


@contextmanager
def _store(database_url: str) -> Iterator[tuple[KeyStore, str]]:
    """The store and its URL to show (without a password); a database error becomes a
    one-line message and exit status 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.keys import KeyStore
    from services.common.database import make_engine

    engine = make_engine(database_url)
    url = engine.url.render_as_string(hide_password=True)
    try:
        yield KeyStore(engine), url
    except SQLAlchemyError as error:
        _fail(
            f"cannot use the API keys in {url}: {str(error).splitlines()[0]}\n"
            "(is it the gateway's database? 'ptychoagent keys create' migrates it)"
        )
    finally:
        engine.dispose()


def _fail(message: object) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


@app.command()
def create(
    name: str = typer.Argument(..., help="A label for whoever holds the key."),
    scope: list[str] = typer.Option(
        ..., "--scope", "-s", help="What the key may do (repeat): predict, feedback, admin."
    ),
    database_url: str = DatabaseOption,
) -> None:
    """Make a key and print its token, once: only a hash of it is kept."""
    from gateway.keys import validate_scopes

    try:
        validate_scopes(scope)  # before a database file is made for nothing
    except ValueError as error:
        _fail(error)
    with _store(database_url) as (store, url):
        store.create_schema()
        try:
            key, token = store.create(name, scope)
        except ValueError as error:
            _fail(error)
    typer.echo(
        f"created API key {key.name!r} (id {key.id}, scopes {', '.join(key.scopes)}) in {url}.\n"
        "Copy the token now: it is not stored and cannot be shown again.",
        err=True,
    )
    typer.echo(token)  # alone on stdout: TOKEN=$(ptychoagent keys create …)


@app.command("list")
def list_keys(database_url: str = DatabaseOption) -> None:
    """Every key with its scopes and last use (never a secret)."""
    from rich.console import Console
    from rich.table import Table

    with _store(database_url) as (store, url):
        keys = store.list()
    if not keys:
        typer.echo(f"no API keys in {url}")
        return
    table = Table(title=f"API keys ({url})")
    for column in ("id", "name", "scopes", "created", "last used", "status"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            key.id,
            key.name,
            ", ".join(key.scopes),
            _when(key.created_at),
            _when(key.last_used_at),
            "active" if key.active else f"revoked {_when(key.revoked_at)}",
        )
    Console().print(table)


@app.command()
def revoke(
    name_or_id: str = typer.Argument(..., metavar="NAME|ID", help="The key's name or id."),
    database_url: str = DatabaseOption,
) -> None:
    """Revoke a key: its token is refused from now on (the record stays, for the audit)."""
    from services.common.errors import NotFound

    started = datetime.now(UTC)
    with _store(database_url) as (store, _):
        try:
            key = store.revoke(name_or_id)
        except NotFound as error:
            _fail(error)
    label = f"API key {key.name!r} (id {key.id})"
    if key.revoked_at is not None and key.revoked_at < started:  # revoked before we came
        typer.echo(f"{label} was already revoked at {_when(key.revoked_at)}")
    else:
        typer.echo(f"revoked {label}; its token is refused from now on")
