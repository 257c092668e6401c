"""SQL pieces every component's store shares: engines, UTC timestamps and the lock table
(the idempotency inbox is ``article6.inbox``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Delete,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    make_url,
)
from sqlalchemy.exc import OperationalError

from article6.block_table import rows_around, to_db
from article6.blocks import Block
from article6.direct import FEW_ROWS, Direct
from article6.process import StartupError
from article6.snapshot import SNAPSHOT


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert value.tzinfo is not None, "store aware datetimes only"
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _create_private(path: str | None) -> None:
    """Create a new SQLite file readable by its owner only (0600): the books and the audit
    trail are nobody else's to read. SQLite gives its -wal and -shm files the database
    file's permissions. An existing file keeps the permissions its operator gave it."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def make_engine(url: str, immediate: bool = True) -> Engine:
    """An engine for ``url``. SQLite: WAL, synchronous=FULL (a commit is on disk before any
    reply leaves), and BEGIN IMMEDIATE for writers, so a read-then-write never fails half way
    when another process writes the same file."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=4)
    _create_private(make_url(url).database)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _: object) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        # A snapshot (article6.snapshot) only reads: it must not take the write lock.
        writes = immediate and not connection.get_execution_options().get(SNAPSHOT, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


# --- locks of pending transactions ---------------------------------------------------------


def lock_table(metadata: MetaData) -> Table:
    """Serial ranges locked by pending transactions; disjoint within a space."""
    return Table(
        "locks",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("transaction_id", String(40), nullable=False, index=True),
        Column("space", String(16), nullable=False),
        Column("serial_first", BigInteger, nullable=False),
        Column("serial_last", BigInteger, nullable=False),
        Index("ix_locks_space_first", "space", "serial_first", unique=True),
    )


def lockers(
    connection: Connection, locks: Table, space: str, ranges: Sequence[Block[Any]]
) -> list[str]:
    """Ids of the transactions holding locks on any of ``ranges``."""
    rows = rows_around(connection, locks, space, ranges, margin=0)
    return sorted({row.transaction_id for row in rows.values()})


def lock(
    connection: Connection, locks: Table, transaction_id: str, blocks: Sequence[Block[Any]]
) -> None:
    """Lock ``blocks`` (unit blocks: their space is their originating registry)."""
    add_lock_rows(connection, locks, lock_rows(transaction_id, blocks))


def lock_rows(transaction_id: str, blocks: Sequence[Block[Any]]) -> list[dict[str, Any]]:
    return [
        {
            "transaction_id": transaction_id,
            "space": block.attributes.originating_registry,
            "serial_first": to_db(block.serial_first),
            "serial_last": to_db(block.serial_last),
        }
        for block in blocks
    ]


def add_lock_rows(connection: Connection, locks: Table, rows: Sequence[dict[str, Any]]) -> None:
    _insert_locks(locks).run(connection, rows)


@cache
def _insert_locks(locks: Table) -> Direct:
    return Direct(insert(locks))


def unlock(connection: Connection, locks: Table, transaction_id: str) -> None:
    unlock_all(connection, locks, [transaction_id])


def unlock_all(connection: Connection, locks: Table, transaction_ids: Sequence[str]) -> None:
    """Release every lock of these transactions: one statement each for a few, one in all
    for many (as ``block_table.delete_rows``)."""
    if len(transaction_ids) > FEW_ROWS:
        connection.execute(_unlock_all(locks), {"ids": list(transaction_ids)})
    elif transaction_ids:
        _unlock(locks).run(connection, [{"id": i} for i in transaction_ids])


@cache
def _unlock(locks: Table) -> Direct:
    return Direct(delete(locks).where(locks.c.transaction_id == bindparam("id")))


@cache
def _unlock_all(locks: Table) -> Delete:
    return delete(locks).where(locks.c.transaction_id.in_(bindparam("ids", expanding=True)))


def shown_url(url: str) -> str:
    """A database URL as logs may show it: its password, if any, masked."""
    return make_url(url).render_as_string(hide_password=True)


@contextlib.contextmanager
def opening(url: str) -> Iterator[None]:
    """Turn a failure to open, create or migrate the database at ``url`` (a path that cannot
    be written, a read-only file, a PostgreSQL server that does not answer or has no such
    database) into one StartupError line naming it, with the database's own first line. A
    statement's programming error is a fault of ours and stays one."""
    try:
        yield
    except OSError as error:
        raise StartupError(f"cannot open database {shown_url(url)}: {error.strerror}") from error
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise StartupError(f"cannot open database {shown_url(url)}: {reason}") from error
