"""Alembic environment of the project database (run by ``services.common.database.migrate``
with an open connection, or by the ``alembic`` command with ``-x url=…``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///runs/ptychoagent.db …")
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        with create_engine(url).connect() as live:
            context.configure(connection=live, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
