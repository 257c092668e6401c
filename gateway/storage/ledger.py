"""The authoritative ledger of unit blocks, and the locks of pending transactions.

Within a serial space, ledger blocks are disjoint (every serial is in exactly one place) and
so are locks. Finding what overlaps a range is two index range scans: the one row starting at
or before the range, and the rows starting inside it. No query scans a space.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Table, func, select

from article6 import sql
from article6.block_table import (
    Neighbourhood,
    block_row,
    digest_texts,
    digest_totals,
    from_db,
    rows_around_spaces,
    rows_at,
    unit_block,
)
from article6.blocks import Block
from article6.model import Held, Holder, LedgerBlock
from article6.reconciliation import Place, Tree
from gateway.storage.schema import ledger_blocks, locks

A = TypeVar("A")


def ledger_block(row: Row[Any]) -> LedgerBlock:
    unit = unit_block(row)
    held = Held(Holder(row.registry, row.account_id), unit.attributes)
    return unit.with_attributes(held)


def _ledger_row(block: LedgerBlock) -> dict[str, Any]:
    holder = block.attributes.holder
    unit = Block(block.serial_first, block.serial_last, block.attributes.unit)
    return {"registry": holder.registry, "account_id": holder.account_id, **block_row(unit)}


def neighbourhood(
    connection: Connection, space: str, ranges: Sequence[Block[Any]]
) -> Neighbourhood[Held]:
    """The ledger blocks of ``space`` overlapping or touching ``ranges``."""
    return Neighbourhood.read_around(
        connection, ledger_blocks, space, ranges, ledger_block, _ledger_row
    )


def neighbourhood_of(space: str, blocks: list[LedgerBlock]) -> Neighbourhood[Held]:
    """The neighbourhood made of ledger ``blocks`` of ``space`` known to be in the table."""
    return Neighbourhood(ledger_blocks, space, blocks, _ledger_row)


def blocks_around(
    connection: Connection, widened: Mapping[str, Sequence[tuple[int, int]]]
) -> dict[str, list[LedgerBlock]]:
    """The ledger blocks sharing a serial with any of these (first, last) ranges, by space:
    one statement on PostgreSQL."""
    return _around(connection, ledger_blocks, widened, ledger_block)


def locks_around(
    connection: Connection, widened: Mapping[str, Sequence[tuple[int, int]]]
) -> dict[str, list[Block[str]]]:
    """The locks on any serial of these ranges, as blocks of the locking transaction's id."""
    return _around(connection, locks, widened, lock_block)


def _around(
    connection: Connection,
    table: Table,
    widened: Mapping[str, Sequence[tuple[int, int]]],
    read: Callable[[Row[Any]], Block[A]],
) -> dict[str, list[Block[A]]]:
    found = rows_around_spaces(connection, table, widened)
    return {space: [read(row) for row in rows.values()] for space, rows in found.items()}


def lock_block(row: Row[Any]) -> Block[str]:
    return Block(from_db(row.serial_first), from_db(row.serial_last), row.transaction_id)


def lock_overlaps(connection: Connection, space: str, ranges: Sequence[Block[Any]]) -> list[str]:
    return sql.lockers(connection, locks, space, ranges)


def add_locks(connection: Connection, transaction_id: str, blocks: Sequence[Block[Any]]) -> None:
    sql.lock(connection, locks, transaction_id, blocks)


def release_locks(connection: Connection, transaction_id: str) -> None:
    sql.unlock(connection, locks, transaction_id)


def count_of_registry(connection: Connection, registry: str) -> int:
    query = select(func.count()).where(ledger_blocks.c.registry == registry)
    return int(connection.execute(query).scalar_one())


def tree_of_registry(connection: Connection, registry: str, fanout: int, depth: int) -> Tree:
    """The registry's blocks in the ledger as a reconciliation tree, from the texts the
    database writes of its rows (``blocks_at`` finds the blocks under a leaf)."""
    where = {"registry": registry}
    totals = digest_totals(connection, ledger_blocks, where)
    return Tree.from_texts(digest_texts(connection, ledger_blocks, where), fanout, depth, totals)


def blocks_at(connection: Connection, registry: str, places: Sequence[Place]) -> list[LedgerBlock]:
    """The registry's ledger blocks starting at ``places``."""
    rows = rows_at(connection, ledger_blocks, places)
    return [ledger_block(row) for row in rows if row.registry == registry]


def blocks_of_registry(connection: Connection, registry: str | None = None) -> list[LedgerBlock]:
    """Every ledger block (of one holding registry), sorted by space and serial."""
    query = select(ledger_blocks).order_by(ledger_blocks.c.space, ledger_blocks.c.serial_first)
    if registry is not None:
        query = query.where(ledger_blocks.c.registry == registry)
    return [ledger_block(row) for row in connection.execute(query)]
