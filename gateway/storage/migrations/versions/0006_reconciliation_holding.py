"""reconciliation runs hold proposals only until both snapshots are pinned

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A run open at the upgrade was left by the hub that stopped for it: holding as it was.
    with op.batch_alter_table("reconciliation_runs") as batch:
        batch.add_column(
            sa.Column("holding", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(sa.text("UPDATE reconciliation_runs SET holding = open"))
    with op.batch_alter_table("reconciliation_runs") as batch:
        batch.alter_column("holding", server_default=None)
        batch.create_index("ix_reconciliation_runs_registry_holding", ["registry", "holding"])


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_runs") as batch:
        batch.drop_index("ix_reconciliation_runs_registry_holding")
        batch.drop_column("released_at")
        batch.drop_column("holding")
