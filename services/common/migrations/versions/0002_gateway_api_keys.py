"""The gateway's API keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_api_keys",
        # The public half of a token ``pk_<id>_<secret>``: listed, logged, typed by hand.
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        # Hex SHA-256 of the secret half. The secrets are random tokens with 256 bits of
        # entropy (``secrets.token_urlsafe(32)``), so nothing can be guessed faster than
        # by brute force and a fast hash is right; a slow password hash (bcrypt, argon2)
        # would only cost time on every request.
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("name", name="uq_gateway_api_keys_name"),
    )


def downgrade() -> None:
    op.drop_table("gateway_api_keys")
