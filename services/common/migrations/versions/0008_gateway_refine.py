"""The gateway's closed-loop refinement: jobs, their rounds, experts' reviews of rounds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_refine_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("api_key_id", sa.String(32), nullable=True),
        sa.Column("sample_type", sa.String(200), nullable=False),
        sa.Column("instrument", sa.String(200), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("experiment_path", sa.Text(), nullable=False),
        sa.Column("experiment_sha256", sa.String(64), nullable=False),
        sa.Column("max_rounds", sa.Integer(), nullable=False),
        sa.Column("rounds_done", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("current", sa.JSON(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_gateway_refine_jobs_state", "gateway_refine_jobs", ["state"])
    op.create_table(
        "gateway_refine_rounds",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("gateway_refine_jobs.id"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("adapter", sa.String(200), nullable=False),
        sa.Column("letters", sa.JSON(), nullable=False),
        sa.Column("applied", sa.JSON(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("options_before", sa.JSON(), nullable=False),
        sa.Column("options_after", sa.JSON(), nullable=True),
        sa.Column("options_diff", sa.JSON(), nullable=False),
        sa.Column("preprocess_before", sa.JSON(), nullable=False),
        sa.Column("preprocess_after", sa.JSON(), nullable=True),
        sa.Column("artifacts_before", sa.JSON(), nullable=False),
        sa.Column("artifacts_after", sa.JSON(), nullable=True),
        sa.Column("metrics_before", sa.JSON(), nullable=False),
        sa.Column("metrics_after", sa.JSON(), nullable=True),
        sa.Column("loss_before", sa.Float(), nullable=True),
        sa.Column("loss_after", sa.Float(), nullable=True),
        sa.Column("verdict", sa.JSON(), nullable=True),
        sa.Column(
            "image_before_sha256",
            sa.String(64),
            sa.ForeignKey("gateway_images.sha256"),
            nullable=True,
        ),
        sa.Column(
            "image_after_sha256",
            sa.String(64),
            sa.ForeignKey("gateway_images.sha256"),
            nullable=True,
        ),
        sa.Column("diagnose_before_id", sa.String(32), nullable=True),
        sa.Column("recommend_id", sa.String(32), nullable=True),
        sa.Column("diagnose_after_id", sa.String(32), nullable=True),
        sa.Column("recon_before_job", sa.String(32), nullable=True),
        sa.Column("recon_after_job", sa.String(32), nullable=True),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("job_id", "number", name="uq_gateway_refine_rounds_job_number"),
    )
    op.create_table(
        "gateway_refine_reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "round_id", sa.String(32), sa.ForeignKey("gateway_refine_rounds.id"), nullable=False
        ),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("expert", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gateway_refine_reviews_round_id", "gateway_refine_reviews", ["round_id"])


def downgrade() -> None:
    op.drop_index("ix_gateway_refine_reviews_round_id", table_name="gateway_refine_reviews")
    op.drop_table("gateway_refine_reviews")
    op.drop_table("gateway_refine_rounds")
    op.drop_index("ix_gateway_refine_jobs_state", table_name="gateway_refine_jobs")
    op.drop_table("gateway_refine_jobs")
