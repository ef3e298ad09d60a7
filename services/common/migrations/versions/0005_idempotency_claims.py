"""Idempotency-Keys claimed in the database before the model call: a key's row is
written first (``claim``, no ``response`` yet) and answered in the transaction that
stores the prediction, so processes and hosts sharing the database call the model once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MIGRATED = "migrated"
"""The claim of the answers kept before this revision."""


def upgrade() -> None:
    with op.batch_alter_table("gateway_idempotency") as table:
        table.add_column(sa.Column("claim", sa.String(32), nullable=True))
        table.add_column(sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
        table.alter_column("response", existing_type=sa.JSON(), nullable=True)
    op.execute(
        sa.text(
            "UPDATE gateway_idempotency SET claim = :claim, answered_at = created_at"
        ).bindparams(claim=MIGRATED)
    )
    with op.batch_alter_table("gateway_idempotency") as table:
        table.alter_column("claim", existing_type=sa.String(32), nullable=False)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM gateway_idempotency WHERE answered_at IS NULL"))
    with op.batch_alter_table("gateway_idempotency") as table:
        table.alter_column("response", existing_type=sa.JSON(), nullable=False)
        table.drop_column("answered_at")
        table.drop_column("claim")
