"""The authoritative ledger of unit blocks, and the locks of pending transactions.

Within a serial space, ledger blocks are disjoint (every serial is in exactly one place) and
so are locks. Finding what overlaps a range is two index range scans: the one row starting at
or before the range, and the rows starting inside it. No query scans a space.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select

from article6.block_table import block_row, overlapping_blocks, rows_around, to_db, unit_block
from article6.blocks import Block, SerialRange, serial_range
from article6.model import Held, Holder, LedgerBlock
from gateway.storage.schema import ledger_blocks, locks


def _ledger_block(row: Row[Any]) -> LedgerBlock:
    unit = unit_block(row)
    held = Held(Holder(row.registry, row.account_id), unit.attributes)
    return unit.with_attributes(held)


def _ledger_row(block: LedgerBlock) -> dict[str, Any]:
    holder = block.attributes.holder
    unit = Block(block.serial_first, block.serial_last, block.attributes.unit)
    return {"registry": holder.registry, "account_id": holder.account_id, **block_row(unit)}


class Neighbourhood:
    """The ledger blocks of one space that overlap or touch some ranges, ready to replace."""

    def __init__(self, connection: Connection, space: str, ranges: Sequence[Block[Any]]) -> None:
        self.space = space
        self._rows = rows_around(connection, ledger_blocks, space, ranges, margin=1)
        self.blocks = [_ledger_block(row) for row in self._rows.values()]

    def overlapping(self, ranges: Sequence[Block[Any]]) -> list[LedgerBlock]:
        return overlapping_blocks(self.blocks, ranges)

    def replace(self, connection: Connection, blocks: Sequence[LedgerBlock]) -> None:
        """Replace the neighbourhood's rows with ``blocks`` (the same serials, rearranged)."""
        assert all(block.attributes.unit.originating_registry == self.space for block in blocks)
        if self._rows:
            connection.execute(delete(ledger_blocks).where(ledger_blocks.c.id.in_(self._rows)))
        if blocks:
            connection.execute(insert(ledger_blocks), [_ledger_row(block) for block in blocks])


def lock_overlaps(connection: Connection, space: str, ranges: Sequence[Block[Any]]) -> list[str]:
    """Ids of the transactions holding locks on any of ``ranges``."""
    rows = rows_around(connection, locks, space, ranges, margin=0)
    return sorted({row.transaction_id for row in rows.values()})


def add_locks(connection: Connection, transaction_id: str, blocks: Sequence[Block[Any]]) -> None:
    connection.execute(
        insert(locks),
        [
            {
                "transaction_id": transaction_id,
                "space": block.attributes.originating_registry,
                "serial_first": to_db(block.serial_first),
                "serial_last": to_db(block.serial_last),
            }
            for block in blocks
        ],
    )


def release_locks(connection: Connection, transaction_id: str) -> None:
    connection.execute(delete(locks).where(locks.c.transaction_id == transaction_id))


def blocks_of_registry(connection: Connection, registry: str | None = None) -> list[LedgerBlock]:
    """Every ledger block (of one holding registry), sorted by space and serial."""
    query = select(ledger_blocks).order_by(ledger_blocks.c.space, ledger_blocks.c.serial_first)
    if registry is not None:
        query = query.where(ledger_blocks.c.registry == registry)
    return [_ledger_block(row) for row in connection.execute(query)]


def ranges_of(blocks: Iterable[Block[Any]]) -> list[SerialRange]:
    return [serial_range(block.serial_first, block.serial_last) for block in blocks]
