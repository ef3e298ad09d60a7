"""Benchmark runs and their items: each answered item is kept at once, keyed by the run
(one per configuration hash) and the item, so a killed run resumes where it stopped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bench_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("config_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("git_revision", sa.String(64), nullable=True),
        sa.Column("gateway_url", sa.String(500), nullable=False),
        sa.Column("report_dir", sa.String(1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "bench_items",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("bench_runs.id"), primary_key=True),
        sa.Column("item_key", sa.String(400), primary_key=True),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("adapter", sa.String(200), nullable=False),
        sa.Column("strategy", sa.String(20), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(200), nullable=False),
        sa.Column("sample_type", sa.String(200), nullable=False),
        sa.Column("truth", sa.JSON(), nullable=False),
        sa.Column("predicted", sa.JSON(), nullable=False),
        sa.Column("raw_answer", sa.Text(), nullable=False),
        sa.Column("unmapped", sa.JSON(), nullable=False),
        sa.Column("prediction_id", sa.String(32), nullable=True),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bench_items")
    op.drop_table("bench_runs")
