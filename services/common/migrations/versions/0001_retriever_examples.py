"""The retriever's example store.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retriever_examples",
        sa.Column("row_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("example_id", sa.String(200), nullable=False),
        sa.Column("split", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("sample_type", sa.String(200), nullable=False),
        sa.Column("instrument", sa.String(200), nullable=False),
        sa.Column("beam", sa.String(100), nullable=False),
        sa.Column("package", sa.String(100), nullable=False),
        sa.Column("artifacts", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("caption_obj", sa.Text(), nullable=False),
        sa.Column("caption_param", sa.Text(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=True),
        sa.Column("image_sha256", sa.String(64), nullable=True),
        sa.Column("origin", sa.String(500), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("task", "example_id", name="uq_retriever_task_example"),
    )
    op.create_index("ix_retriever_examples_task", "retriever_examples", ["task"])


def downgrade() -> None:
    op.drop_index("ix_retriever_examples_task", table_name="retriever_examples")
    op.drop_table("retriever_examples")
