"""The gateway's record: predictions with their provenance, uploaded images, expert
feedback, and the answers kept for Idempotency-Key replays.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_images",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "gateway_predictions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("analysis_id", sa.String(32), nullable=True),
        sa.Column("api_key_id", sa.String(32), nullable=True),
        sa.Column("sample_type", sa.String(200), nullable=False),
        sa.Column("instrument", sa.String(200), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("raw_answer", sa.Text(), nullable=False),
        sa.Column("unmapped", sa.JSON(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.Column("backend", sa.String(20), nullable=False),
        sa.Column("adapter", sa.String(200), nullable=False),
        sa.Column("service_url", sa.String(500), nullable=False),
        sa.Column("prompt_version", sa.String(50), nullable=True),
        sa.Column("prompt_hash", sa.String(64), nullable=True),
        sa.Column("example_ids", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(20), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("backend_latency_s", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column(
            "image_sha256", sa.String(64), sa.ForeignKey("gateway_images.sha256"), nullable=True
        ),
    )
    op.create_index("ix_gateway_predictions_created_at", "gateway_predictions", ["created_at"])
    op.create_index("ix_gateway_predictions_sample_type", "gateway_predictions", ["sample_type"])
    op.create_index("ix_gateway_predictions_analysis_id", "gateway_predictions", ["analysis_id"])
    op.create_table(
        "gateway_feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "prediction_id",
            sa.String(32),
            sa.ForeignKey("gateway_predictions.id"),
            nullable=False,
        ),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("expert", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("added_to_pool", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gateway_feedback_prediction_id", "gateway_feedback", ["prediction_id"])
    op.create_table(
        "gateway_idempotency",
        sa.Column("api_key_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("endpoint", sa.String(50), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_idempotency")
    op.drop_index("ix_gateway_feedback_prediction_id", table_name="gateway_feedback")
    op.drop_table("gateway_feedback")
    op.drop_index("ix_gateway_predictions_analysis_id", table_name="gateway_predictions")
    op.drop_index("ix_gateway_predictions_sample_type", table_name="gateway_predictions")
    op.drop_index("ix_gateway_predictions_created_at", table_name="gateway_predictions")
    op.drop_table("gateway_predictions")
    op.drop_table("gateway_images")
