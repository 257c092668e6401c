"""A reconciliation's snapshot: the books as they were when it was pinned, while writers go
on, on SQLite (a WAL read transaction) and PostgreSQL (REPEATABLE READ) alike."""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy import func, insert, select

from article6.block_table import block_row
from article6.blocks import Block
from article6.model import Purpose, UnitAttributes, UnitKind, UnitState
from article6.node import store
from article6.snapshot import Snapshot

UNIT = UnitAttributes("GHA01", 2024, "CA0001", "GHA", "GHA-1", Purpose.NDC, UnitKind.ITMO,
                      UnitState.HELD)  # fmt: skip


def holding(first: int, last: int) -> dict[str, object]:
    return {"account_id": "GHA01-1001-57", **block_row(Block(first, last, UNIT))}


def test_a_snapshot_keeps_the_books_as_pinned_while_a_writer_commits(
    registry_database_url: str,
) -> None:
    engine = store.open_database(registry_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(store.holdings), [holding(1, 10), holding(21, 30)])
        snapshot = Snapshot(engine, store.holdings)
        try:
            # The writer is not blocked by the snapshot (SQLite: no write lock is taken).
            with engine.begin() as connection:
                connection.execute(insert(store.holdings), [holding(41, 50)])

            async def read() -> tuple[int, int | None, list[int]]:
                tree = await snapshot.read(partial(store.holdings_tree, fanout=16, depth=1))
                places = tree.places(tree.leaves)
                listed = await snapshot.read(
                    partial(store.holdings_at, registry="GHA01", places=places)
                )
                count = await snapshot.read(
                    lambda c: c.execute(select(func.count()).select_from(store.holdings)).scalar()
                )
                return tree.root.block_count, count, sorted(b.serial_first for b in listed)

            assert asyncio.run(read()) == (2, 2, [1, 21])
        finally:
            snapshot.close()
        with engine.connect() as connection:  # the books themselves moved on
            assert store.holdings_tree(connection, 16, 1).root.block_count == 3
    finally:
        engine.dispose()
