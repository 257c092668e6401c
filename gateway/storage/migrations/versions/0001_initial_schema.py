"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
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
        "inbox",
        sa.Column("sender", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("payload_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sender", "message_id"),
    )
    op.create_table(
        "ledger_blocks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("space", sa.String(length=16), nullable=False),
        sa.Column("serial_first", sa.BigInteger(), nullable=False),
        sa.Column("serial_last", sa.BigInteger(), nullable=False),
        sa.Column("registry", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("vintage", sa.Integer(), nullable=False),
        sa.Column("cooperative_approach", sa.String(length=16), nullable=False),
        sa.Column("first_transferring_party", sa.String(length=3), nullable=False),
        sa.Column("authorization_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.Integer(), nullable=False),
        sa.Column("unit_kind", sa.Integer(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("activity_id", sa.String(length=64), nullable=False),
        sa.Column("host_party", sa.String(length=3), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_blocks", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_blocks_registry", ["registry"], unique=False)
        batch_op.create_index(
            "ix_ledger_blocks_space_first", ["space", "serial_first"], unique=True
        )

    op.create_table(
        "locks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.String(length=40), nullable=False),
        sa.Column("space", sa.String(length=16), nullable=False),
        sa.Column("serial_first", sa.BigInteger(), nullable=False),
        sa.Column("serial_last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("locks", schema=None) as batch_op:
        batch_op.create_index("ix_locks_space_first", ["space", "serial_first"], unique=True)
        batch_op.create_index(
            batch_op.f("ix_locks_transaction_id"), ["transaction_id"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recipient", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("payload_type", sa.String(length=80), nullable=False),
        sa.Column("transaction_id", sa.String(length=40), nullable=True),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_state_next", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outbox_transaction_id"), ["transaction_id"], unique=False
        )

    op.create_table(
        "registry_status",
        sa.Column("registry_id", sa.String(length=16), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("registry_id"),
    )
    op.create_table(
        "transaction_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("transaction_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transaction_history_transaction_id"), ["transaction_id"], unique=False
        )

    op.create_table(
        "transactions",
        sa.Column("transaction_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("proposer", sa.String(length=16), nullable=False),
        sa.Column("transferring_registry", sa.String(length=16), nullable=False),
        sa.Column("acquiring_registry", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("respond_by", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("transaction_id"),
    )
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transactions_status_respond_by", ["status", "respond_by"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_transactions_status_respond_by")

    op.drop_table("transactions")
    with op.batch_alter_table("transaction_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transaction_history_transaction_id"))

    op.drop_table("transaction_history")
    op.drop_table("registry_status")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_transaction_id"))
        batch_op.drop_index("ix_outbox_state_next")

    op.drop_table("outbox")
    with op.batch_alter_table("locks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_locks_transaction_id"))
        batch_op.drop_index("ix_locks_space_first")

    op.drop_table("locks")
    with op.batch_alter_table("ledger_blocks", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_blocks_space_first")
        batch_op.drop_index("ix_ledger_blocks_registry")

    op.drop_table("ledger_blocks")
    op.drop_table("inbox")
