"""the sections, their opening requests and accounts (the schema before migrations)

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "opening_requests",
        sa.Column("request_id", sa.String(16), primary_key=True),
        sa.Column("party", sa.String(3), nullable=False),
        sa.Column("submitted_by", sa.Text(), nullable=False),
        sa.Column("focal_point", sa.String(12), nullable=False),
        sa.Column("administrators", sa.Text(), nullable=False),
        sa.Column("documents", sa.Text(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_at", WHEN, nullable=False),
    )
    op.create_table(
        "sections",
        sa.Column("party", sa.String(3), primary_key=True),
        sa.Column("request_id", sa.String(16), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("opened_at", WHEN, nullable=False),
        sa.Column("verified_at", WHEN, nullable=True),
    )
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(40), primary_key=True),
        sa.Column("party", sa.String(3), nullable=False),
        sa.Column("account_type", sa.String(32), nullable=False),
        sa.Column("ars", sa.Boolean(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("cooperative_approaches", sa.Text(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    for table in ("accounts", "sections", "opening_requests"):
        op.drop_table(table)
