"""A registry's books: holdings, transactions, local locks, inbox, outbox, counters.

Holdings are kept in canonical form (adjacent blocks with the same account and attributes
merged), like the hub's ledger, so the two compare block for block. Units of an outgoing
transaction are locked locally until the hub's final status arrives. The schema is created on
first use; a registry built on this one would manage it with migrations like the hub's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    inspect,
    select,
    text,
    update,
)

from article6 import sql
from article6.block_table import (
    Neighbourhood,
    block_columns,
    block_row,
    digest_texts,
    digest_totals,
    rows_at,
    unit_block,
)
from article6.blocks import Block
from article6.codes import Code
from article6.direct import Direct
from article6.inbox import inbox_table
from article6.model import Held, Holder, LedgerBlock, Status
from article6.outbox import outbox_table, release_claims
from article6.reconciliation import Place, Tree
from article6.sql import lock_table, make_engine, opening

metadata = MetaData()

holdings = Table(
    "holdings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(40), nullable=False),
    *block_columns(),
    Index("ix_holdings_space_first", "space", "serial_first", unique=True),
)

local_locks = lock_table(metadata)

transactions = Table(
    "transactions",
    metadata,
    Column("transaction_id", String(40), primary_key=True),
    Column("role", String(10), nullable=False),  # proposer or acquirer
    Column("status", Integer, nullable=False),
    Column("applied", Boolean, nullable=False),
    Column("results", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    # The retry sweep and the status gauge look for the few unfinished rows among many final ones.
    Index("ix_transactions_status", "status"),
)

inbox = inbox_table(metadata)

outbox = outbox_table(metadata)

counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Integer, nullable=False),
)


Schema = MetaData | Callable[[Engine], None]
"""A registry's own tables: created if missing (MetaData), or brought up to date by its
migrations (a function of the engine)."""


# A local transaction the hub has taken whose final status has not arrived yet.
WAITING = (Status.CHECKED.value, Status.ACCEPTED.value, Status.PROPOSED.value)


def open_database(url: str, *extra: Schema) -> Engine:
    """The engine, with the schema (these tables and a registry's ``extra`` ones) created if
    missing or migrated; the server and the command line share it."""
    with opening(url):
        engine = make_engine(url)
        _outbox_before_claims(engine)
        for tables in (metadata, *extra):
            if not isinstance(tables, MetaData):
                tables(engine)
                continue
            tables.create_all(engine)
            for table in tables.tables.values():  # indexes added since a table was created
                for index in table.indexes:
                    index.create(engine, checkfirst=True)
    return engine


def _outbox_before_claims(engine: Engine) -> None:
    """Bring an outbox written before the shared outbox shape (``article6.outbox``) up to it:
    the recipient of every message was the hub (``start_outbox`` names it), and nothing was
    claimed or marked with a delivery time."""
    found = inspect(engine)
    if not found.has_table("outbox"):
        return
    have = {column["name"] for column in found.get_columns("outbox")}
    added = [column for column in outbox.columns if column.name not in have]
    with engine.begin() as connection:
        for column in added:
            kind = column.type.compile(engine.dialect)
            default = " NOT NULL DEFAULT ''" if column.name == "recipient" else ""
            connection.execute(text(f"ALTER TABLE outbox ADD COLUMN {column.name} {kind}{default}"))


def start_outbox(connection: Connection, hub_id: str) -> None:
    """At a registry's start: the hub is the recipient of messages written before outboxes
    named one, and no claim of a stopped process holds (one process owns a registry's
    books)."""
    connection.execute(update(outbox).where(outbox.c.recipient == "").values(recipient=hub_id))
    release_claims(connection, outbox)


def utcnow() -> datetime:
    """Naive UTC, as SQLite keeps it."""
    return datetime.now(UTC).replace(tzinfo=None)


# --- accounts ------------------------------------------------------------------------------


def next_number(connection: Connection, name: str) -> int:
    row = connection.execute(select(counters.c.value).where(counters.c.name == name)).first()
    value = 1 if row is None else row.value + 1
    if row is None:
        connection.execute(insert(counters).values(name=name, value=value))
    else:
        connection.execute(update(counters).where(counters.c.name == name).values(value=value))
    return value


# --- holdings ------------------------------------------------------------------------------


def _held(row: Any, registry: str) -> LedgerBlock:
    unit = unit_block(row)
    return unit.with_attributes(Held(Holder(registry, row.account_id), unit.attributes))


def _row(block: LedgerBlock) -> dict[str, Any]:
    unit = Block(block.serial_first, block.serial_last, block.attributes.unit)
    return {"account_id": block.attributes.holder.account_id, **block_row(unit)}


def neighbourhood(
    connection: Connection, registry: str, space: str, ranges: Sequence[Block[Any]]
) -> Neighbourhood[Held]:
    """This registry's holdings of ``space`` overlapping or touching ``ranges``."""
    return Neighbourhood.read_around(
        connection, holdings, space, ranges, partial(_held, registry=registry), _row
    )


def all_holdings(connection: Connection, registry: str) -> list[LedgerBlock]:
    rows = connection.execute(select(holdings).order_by(holdings.c.space, holdings.c.serial_first))
    return [_held(row, registry) for row in rows]


def holdings_tree(connection: Connection, fanout: int, depth: int) -> Tree:
    """Every block of the books as a reconciliation tree, from the texts the database writes
    of its rows (``holdings_at`` finds the blocks under a leaf)."""
    totals = digest_totals(connection, holdings)
    return Tree.from_texts(digest_texts(connection, holdings), fanout, depth, totals)


def holdings_at(
    connection: Connection, registry: str, places: Sequence[Place]
) -> list[LedgerBlock]:
    """The blocks of the books starting at ``places``."""
    return [_held(row, registry) for row in rows_at(connection, holdings, places)]


def account_holdings(connection: Connection, registry: str, account_id: str) -> list[LedgerBlock]:
    rows = connection.execute(
        select(holdings)
        .where(holdings.c.account_id == account_id)
        .order_by(holdings.c.space, holdings.c.serial_first)
    )
    return [_held(row, registry) for row in rows]


@dataclass(frozen=True)
class Removed:
    """What ``remove_space`` took out of the books."""

    blocks: int
    units: int
    waiting: list[str]  # the space's transactions that were waiting for an outcome
    messages: int  # messages about the space's transactions dropped from the outbox


def remove_space(connection: Connection, registry: str, space: str) -> Removed:
    """Take every block of serial space ``space`` out of the books, with its locks and the
    messages about its transactions still waiting in the outbox (a test's units, such as the
    conformance kit's, whose transaction ids begin with the space). The space's transactions
    still waiting for an outcome are listed for the caller to close."""
    assert space != registry, "a registry's own serial space is never removed"
    rows = connection.execute(select(holdings).where(holdings.c.space == space)).all()
    units = sum(_held(row, registry).unit_count for row in rows)
    connection.execute(delete(holdings).where(holdings.c.space == space))
    connection.execute(delete(local_locks).where(local_locks.c.space == space))
    ours = transactions.c.transaction_id.startswith(f"{space}-", autoescape=True)
    open_ids = list(
        connection.execute(
            select(transactions.c.transaction_id).where(ours, transactions.c.status.in_(WAITING))
        ).scalars()
    )
    dropped = connection.execute(
        delete(outbox).where(
            outbox.c.state == "pending",
            outbox.c.transaction_id.startswith(f"{space}-", autoescape=True),
        )
    )
    return Removed(len(rows), units, open_ids, dropped.rowcount)


def locked(connection: Connection, space: str, ranges: Sequence[Block[Any]]) -> bool:
    return bool(sql.lockers(connection, local_locks, space, ranges))


def lock(connection: Connection, transaction_id: str, blocks: Sequence[Block[Any]]) -> None:
    sql.lock(connection, local_locks, transaction_id, blocks)


def unlock(connection: Connection, transaction_id: str) -> None:
    sql.unlock(connection, local_locks, transaction_id)


# --- transactions --------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalTransaction:
    transaction_id: str
    role: str
    status: Status
    applied: bool
    results: list[tuple[int, str]]
    body: bytes
    updated_at: datetime


def get_transaction(connection: Connection, transaction_id: str) -> LocalTransaction | None:
    rows = _by_id().rows(connection, {"id": transaction_id})
    if not rows:
        return None
    (row,) = rows
    results = [(code, detail) for code, detail in json.loads(row.results)]
    return LocalTransaction(
        row.transaction_id, row.role, Status(row.status), row.applied, results, row.body,
        row.updated_at,
    )  # fmt: skip


def put_transaction(
    connection: Connection,
    transaction_id: str,
    *,
    role: str,
    status: Status,
    body: bytes,
    applied: bool = False,
    results: Sequence[tuple[Code | int, str]] = (),
) -> None:
    """Insert or update a local transaction; a final status is never replaced."""
    encoded = json.dumps([[int(code), detail] for code, detail in results])
    existing = get_transaction(connection, transaction_id)
    values = {
        "status": status.value,
        "applied": applied,
        "results": encoded,
        "updated_at": utcnow(),
    }
    if existing is None:
        row = {"transaction_id": transaction_id, "role": role, "body": body, **values}
        _insert_transaction().run(connection, row)
        return
    assert not (existing.status.final and existing.status is not status), (
        f"{transaction_id}: final {existing.status.name} cannot become {status.name}"
    )
    _transaction_change().run(connection, {"id": transaction_id, **values})


@cache
def _by_id() -> Direct:
    """Built once: on the hot paths, constructing a statement costs more than running it, and
    SQLAlchemy's execution more than SQLite's (article6.direct)."""
    return Direct(select(transactions).where(transactions.c.transaction_id == bindparam("id")))


@cache
def _transaction_change() -> Direct:
    """The changed columns come as parameters named after them."""
    return Direct(update(transactions).where(transactions.c.transaction_id == bindparam("id")))


@cache
def _insert_transaction() -> Direct:
    return Direct(insert(transactions))


def list_transactions(connection: Connection) -> list[LocalTransaction]:
    rows = connection.execute(
        select(transactions.c.transaction_id).order_by(transactions.c.updated_at)
    )
    found = [get_transaction(connection, row.transaction_id) for row in rows]
    return [record for record in found if record is not None]


def completed_transactions(connection: Connection) -> Iterator[tuple[bytes, datetime]]:
    """Every completed transaction's body and when it completed, in that order, one at a
    time (read as they are needed)."""
    query = (
        select(transactions.c.body, transactions.c.updated_at)
        .where(transactions.c.status == Status.COMPLETED.value)
        .order_by(transactions.c.updated_at, transactions.c.transaction_id)
    )
    for row in connection.execute(query):
        yield row.body, row.updated_at


def unsettled(connection: Connection, older_than: datetime) -> list[LocalTransaction]:
    """Local transactions the hub has taken but whose final status has not arrived."""
    rows = connection.execute(
        select(transactions.c.transaction_id).where(
            transactions.c.status.in_(WAITING), transactions.c.updated_at < older_than
        )
    )
    found = [get_transaction(connection, row.transaction_id) for row in rows]
    return [record for record in found if record is not None]


# --- inbox ----------------------------------------------------------------------
