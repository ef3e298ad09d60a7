"""The project database: one SQLAlchemy engine per service, SQLite by default,
PostgreSQL by URL (``postgresql+psycopg://user:password@host:5432/name``).

SQLite files get their folder created, write-ahead logging (readers do not wait for a
writer) and a busy timeout, so several processes can share one file on a laptop.
Everything here is synchronous: services call it through ``asyncio.to_thread``.

The schema has one history, in Alembic migrations (``services/common/migrations``);
every service that owns tables runs :func:`migrate` at start-up, which brings the
database to the newest revision (under a PostgreSQL advisory lock, so replicas starting
together migrate once). By hand: ``alembic -c services/common/migrations/alembic.ini
-x url=URL upgrade head``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

log = logging.getLogger(__name__)
T = TypeVar("T")


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


def as_utc(moment: datetime) -> datetime:
    """SQLite keeps no zone: what it gives back was written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def retrying(
    write: Callable[[], T], retries: int = 5, sleep: Callable[[float], None] = time.sleep
) -> T:
    """``write()``, again (with back-off) while the database connection drops, as in a
    PostgreSQL restart; other errors are raised at once."""
    for attempt in range(retries + 1):
        try:
            return write()
        except (OperationalError, DBAPIError) as error:
            if not error.connection_invalidated and not isinstance(error, OperationalError):
                raise
            if attempt == retries:
                raise
            delay = min(0.2 * 2**attempt, 5.0)
            log.warning("database write failed (%s); retrying in %.1f s", error, delay)
            sleep(delay)
    raise AssertionError("unreachable")


MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x70747963  # any constant shared by every service
FIRST_TABLES = {"0001": "retriever_examples"}
"""Tables that the first revision creates; a database made before migrations existed
(``create_all``) is stamped at that revision instead of failing."""


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision of the schema."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def revision_of(engine: Engine) -> str | None:
    """The revision a database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema to ``revision`` (default: the newest)."""
    from alembic import command

    config = _alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        tables = set(inspect(connection).get_table_names())
        if "alembic_version" not in tables:
            for first, table in FIRST_TABLES.items():
                if table in tables:
                    log.warning("database made before migrations: stamping revision %s", first)
                    command.stamp(config, first)
        command.upgrade(config, revision)
