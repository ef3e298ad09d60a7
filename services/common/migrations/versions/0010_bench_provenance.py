"""What a benchmark run was made with (adapter hashes, engines, prompt and data set
hashes, package versions, machine), and the prompt hash of each item.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("bench_runs", sa.Column("provenance", sa.JSON(), nullable=True))
    op.add_column("bench_items", sa.Column("prompt_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # not batch mode: SQLite would copy bench_runs, which bench_items refers to
    op.drop_column("bench_items", "prompt_sha256")
    op.drop_column("bench_runs", "provenance")
