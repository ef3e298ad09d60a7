"""The project database: one SQLAlchemy engine per service, SQLite by default,
PostgreSQL by URL (``postgresql+psycopg://user:password@host:5432/name``).

SQLite files get their folder created, write-ahead logging (readers do not wait for a
writer) and a busy timeout, so several processes can share one file on a laptop.
Everything here is synchronous: services call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 (the driver the project ships)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created."""
    url = normalise_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def ping(engine: Engine) -> bool:
    """Whether the database answers ``SELECT 1`` now."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("database %s does not answer: %s", engine.url.render_as_string(), error)
        return False
    return True
