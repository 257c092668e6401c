"""The hub's tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

Blocks and locks store serials as ``article6.block_table`` does (shifted into signed BIGINT).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from article6.block_table import block_columns
from article6.inbox import inbox_table
from article6.outbox import outbox_table
from article6.sql import UtcDateTime, lock_table

metadata = MetaData()

registry_status = Table(
    "registry_status",
    metadata,
    Column("registry_id", String(16), primary_key=True),
    Column("suspended", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("changed_at", UtcDateTime(), nullable=False),
)

transactions = Table(
    "transactions",
    metadata,
    Column("transaction_id", String(40), primary_key=True),
    Column("type", Integer, nullable=False),
    Column("proposer", String(16), nullable=False),
    Column("transferring_registry", String(16), nullable=False),
    Column("acquiring_registry", String(16), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("status", Integer, nullable=False),
    Column("results", Text, nullable=False),  # JSON list of [code, detail]
    Column("body", LargeBinary, nullable=False),  # the article6.v1.Transaction, serialized
    Column("proposed_at", UtcDateTime(), nullable=False),
    Column("status_at", UtcDateTime(), nullable=False),
    Column("respond_by", UtcDateTime(), nullable=True),
    Index("ix_transactions_status_respond_by", "status", "respond_by"),
)

transaction_history = Table(
    "transaction_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transaction_id", String(40), nullable=False, index=True),
    Column("status", Integer, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("results", Text, nullable=False),
)

ledger_blocks = Table(
    "ledger_blocks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registry", String(16), nullable=False),
    Column("account_id", String(40), nullable=False),
    *block_columns(),
    Index("ix_ledger_blocks_space_first", "space", "serial_first", unique=True),
    Index("ix_ledger_blocks_registry", "registry"),
)

authorizations = Table(
    "authorizations",
    metadata,
    Column("authorization_id", String(64), primary_key=True),
    Column("registry", String(16), nullable=False),  # where the authorization was recorded
    Column("authorizing_party", String(3), nullable=False),
    Column("cooperative_approach", String(16), nullable=False),
    Column("purpose", Integer, nullable=False),
    Column("quantity_cap", BigInteger, nullable=False),  # 0: no cap
    Column("vintage_first", Integer, nullable=False),
    Column("vintage_last", Integer, nullable=False),
    # Units first transferred or in a pending first transfer: what counts against the cap.
    Column("reserved", BigInteger, nullable=False),
    Column("transaction_id", String(40), nullable=False),  # of version 1
    Column("granted_at", UtcDateTime(), nullable=False),
    # The current version's terms that the rules read (every version in full below).
    Column("version", Integer, nullable=False),
    Column("first_transfer_definition", Integer, nullable=False),
    Column("use_year_first", Integer, nullable=False),  # 0: open
    Column("use_year_last", Integer, nullable=False),  # 0: open
    Column("revoked", Boolean, nullable=False),
)

# Every version of every authorization, as sent (article6.v1.Authorization, deterministic
# bytes): never changed, so each version stays queryable as it was recorded.
authorization_versions = Table(
    "authorization_versions",
    metadata,
    Column("authorization_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("registry", String(16), nullable=False),
    Column("transaction_id", String(40), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("body", LargeBinary, nullable=False),
)

locks = lock_table(metadata)

inbox = inbox_table(metadata)

outbox = outbox_table(metadata)

# A reconciliation run with one registry (status numbers of article6.v1.ReconciliationStatus).
reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("registry", String(16), nullable=False),
    Column("status", Integer, nullable=False),
    Column("open", Boolean, nullable=False),  # from the start until the end
    # The registry's proposals wait while this is true: until both snapshots are pinned.
    Column("holding", Boolean, nullable=False),
    Column("released_at", UtcDateTime(), nullable=True),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("fanout", Integer, nullable=False),
    Column("depth", Integer, nullable=False),
    Column("hub_blocks", BigInteger, nullable=False),
    Column("registry_blocks", BigInteger, nullable=False),
    Column("round_trips", Integer, nullable=False),
    Column("bytes_exchanged", BigInteger, nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_reconciliation_runs_registry_open", "registry", "open"),
    Index("ix_reconciliation_runs_registry_holding", "registry", "holding"),
)

# A block one side has and the other has not, exactly so: found by a run or by a leg
# confirmation. While open, its serials are frozen.
discrepancies = Table(
    "discrepancies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(40), nullable=True, index=True),
    Column("transaction_id", String(40), nullable=True),  # a leg confirmation's
    Column("registry", String(16), nullable=False),
    Column("side", String(8), nullable=False),  # hub or registry: whose block this is
    Column("space", String(16), nullable=False),
    Column("serial_first", BigInteger, nullable=False),
    Column("serial_last", BigInteger, nullable=False),
    Column("block", Text, nullable=False),  # the block as that side has it (JSON)
    Column("open", Boolean, nullable=False),
    Column("found_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("resolved_by", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_discrepancies_open_space", "open", "space", "serial_first"),
)

# The audit trail (gateway.audit): append-only, hash-chained. ``seq`` is assigned under the
# head row's lock, so entries from several hub processes form one chain.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(40), nullable=False),
    Column("subject", String(80), nullable=False),
    Column("detail", Text, nullable=False),  # JSON object
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_subject", "subject"),
)

# One row: the chain's last entry, signed by the hub's key each time it moves.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", LargeBinary, nullable=False),
)
