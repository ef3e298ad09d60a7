"""A write token on each feedback row, so a write retried after a commit whose
acknowledgement was lost (a database restart at the wrong moment) finds its row
instead of storing the feedback twice.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_feedback") as table:
        table.add_column(sa.Column("write_token", sa.String(32), nullable=True))
        table.create_unique_constraint("uq_gateway_feedback_write_token", ["write_token"])


def downgrade() -> None:
    with op.batch_alter_table("gateway_feedback") as table:
        table.drop_constraint("uq_gateway_feedback_write_token", type_="unique")
        table.drop_column("write_token")
