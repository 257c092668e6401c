"""The authoritative ledger of unit blocks, and the locks of pending transactions.

Within a serial space, ledger blocks are disjoint (every serial is in exactly one place) and
so are locks. Finding what overlaps a range is two index range scans: the one row starting at
or before the range, and the rows starting inside it. No query scans a space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, func, select

from article6 import sql
from article6.block_table import Neighbourhood, block_row, digest_rows, unit_block
from article6.blocks import Block
from article6.model import Held, Holder, LedgerBlock
from article6.reconciliation import Tree, block_of_row
from gateway.storage.schema import ledger_blocks, locks


def _ledger_block(row: Row[Any]) -> LedgerBlock:
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
    return Neighbourhood(connection, ledger_blocks, space, ranges, _ledger_block, _ledger_row)


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
    """The registry's blocks in the ledger as a reconciliation tree, built from the rows as
    they are read (a block is made of a row only when its leaf is listed)."""
    rows = digest_rows(connection, ledger_blocks, {"registry": registry})
    return Tree.from_rows(rows, fanout, depth, lambda row, _: block_of_row(row, registry))


def blocks_of_registry(connection: Connection, registry: str | None = None) -> list[LedgerBlock]:
    """Every ledger block (of one holding registry), sorted by space and serial."""
    query = select(ledger_blocks).order_by(ledger_blocks.c.space, ledger_blocks.c.serial_first)
    if registry is not None:
        query = query.where(ledger_blocks.c.registry == registry)
    return [_ledger_block(row) for row in connection.execute(query)]
