"""authorizations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
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
        "authorizations",
        sa.Column("authorization_id", sa.String(length=64), nullable=False),
        sa.Column("registry", sa.String(length=16), nullable=False),
        sa.Column("authorizing_party", sa.String(length=3), nullable=False),
        sa.Column("cooperative_approach", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.Integer(), nullable=False),
        sa.Column("quantity_cap", sa.BigInteger(), nullable=False),
        sa.Column("vintage_first", sa.Integer(), nullable=False),
        sa.Column("vintage_last", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.String(length=40), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("authorization_id"),
    )


def downgrade() -> None:
    op.drop_table("authorizations")
