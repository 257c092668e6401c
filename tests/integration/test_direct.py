"""Statements run on the driver (article6.direct) behave as SQLAlchemy's own execution does:
the same values back, the same transaction, the same errors (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    exc,
    func,
    insert,
    select,
    update,
)

from article6.block_table import block_columns, block_row, from_db, rows_around
from article6.blocks import Block
from article6.direct import Direct, pipelined
from article6.model import Purpose, UnitAttributes, UnitKind, UnitState
from article6.node import store
from article6.reconciliation import Tree, block_totals
from article6.sql import UtcDateTime, make_engine

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(16), nullable=False, unique=True),
    Column("open", Boolean, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("kind", String(8), nullable=False, default="plain"),
)
AT = datetime(2026, 11, 26, 12, 30, 15, 123456, tzinfo=UTC)
ADD = Direct(insert(things))
BY_NAME = Direct(select(things).where(things.c.name == bindparam("name")).limit(1))
RENAME = Direct(update(things).where(things.c.name == bindparam("was")))


def test_values_transactions_and_errors_are_sqlalchemys(hub_database_url: str) -> None:
    engine = make_engine(hub_database_url)
    metadata.create_all(engine)
    try:
        rows = [
            {"name": f"n{i}", "open": i % 2 == 0, "body": bytes([i]), "at": AT, "kind": "k"}
            for i in range(3)
        ]
        with engine.begin() as connection:
            assert ADD.run(connection, rows) == 3
            (found,) = BY_NAME.rows(connection, {"name": "n1"})
            assert (found.name, found.open, found.body, found.at) == ("n1", False, b"\x01", AT)
            assert found.at.tzinfo is UTC
            assert RENAME.run(connection, {"was": "n1", "name": "m1"}) == 1
            assert BY_NAME.rows(connection, {"name": "n1"}) == []
            with pytest.raises(exc.IntegrityError), connection.begin_nested():
                ADD.run(connection, rows[0])  # a unique-key race, as SQLAlchemy reports one
            assert len(BY_NAME.rows(connection, {"name": "m1"})) == 1  # the rest stands
        with engine.connect() as connection:  # begun as SQLAlchemy would: rolled back at close
            ADD.run(connection, {**rows[0], "name": "lost"})
        with engine.connect() as connection:
            assert BY_NAME.rows(connection, {"name": "lost"}) == []
            names = connection.execute(select(things.c.name).order_by(things.c.id)).scalars()
            assert names.all() == ["n0", "m1", "n2"]
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_a_pipeline_writes_as_statements_one_by_one_and_its_errors_are_sqlalchemys(
    hub_database_url: str,
) -> None:
    engine = make_engine(hub_database_url)
    metadata.create_all(engine)
    row = {"name": "n0", "open": True, "body": b"", "at": AT, "kind": "k"}
    try:
        with engine.begin() as connection:
            with pipelined(connection):
                ADD.run(connection, row)
                ADD.run(connection, [{**row, "name": "n1"}, {**row, "name": "n2"}])
                RENAME.run(connection, {"was": "n1", "name": "m1"})
            assert [r.name for r in BY_NAME.rows(connection, {"name": "m1"})] == ["m1"]
            with pytest.raises(exc.IntegrityError):
                _race_in_a_pipeline(connection, row)
            assert BY_NAME.rows(connection, {"name": "n3"}) == []  # the savepoint took it
        with engine.connect() as connection:
            names = connection.execute(select(things.c.name).order_by(things.c.id)).scalars()
            assert names.all() == ["n0", "m1", "n2"]
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_rows_inserted_together_are_those_inserted_one_by_one(hub_database_url: str) -> None:
    """Several rows in one INSERT (on PostgreSQL one statement, each column's values an
    array): the same values in the batch's order, and the same refusals as a row alone (a
    duplicate key; on PostgreSQL, a string longer than its column), the whole INSERT undone;
    the new rows' ids, each the id of its row."""
    engine = make_engine(hub_database_url)
    metadata.create_all(engine)
    rows = [
        {"name": f"n{i}", "open": i % 2 == 0, "body": bytes([i]) * i, "kind": "k",
         "at": AT + timedelta(days=i, microseconds=i)}
        for i in range(5)
    ]  # fmt: skip
    new = {**rows[0], "name": "new"}
    try:
        with engine.begin() as connection:
            assert ADD.run(connection, rows) == 5
            found = connection.execute(select(things).order_by(things.c.id)).mappings().all()
            assert [{k: v for k, v in row.items() if k != "id"} for row in found] == rows
            with pytest.raises(exc.IntegrityError), connection.begin_nested():
                ADD.run(connection, [new, rows[2]])
            if engine.dialect.name == "postgresql":  # SQLite keeps any length
                with pytest.raises(exc.DataError), connection.begin_nested():
                    ADD.run(connection, [new, {**rows[0], "name": "x" * 17}])
            assert ADD.run(connection, [new, {**new, "name": "x" * 16}]) == 2
            count = connection.execute(select(func.count()).select_from(things)).scalar()
            assert count == 7
            more = [{**rows[0], "name": f"m{i}"} for i in (3, 1, 2)]
            ids = ADD.insert_all(connection, more)  # each row's new id, in the rows' order
            for row_id, row in zip(ids, more, strict=True):
                name = connection.execute(select(things.c.name).where(things.c.id == row_id))
                assert name.scalar_one() == row["name"]
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def _race_in_a_pipeline(connection: Connection, row: dict[str, Any]) -> None:
    with connection.begin_nested(), pipelined(connection):
        ADD.run(connection, {**row, "name": "n3"})
        ADD.run(connection, row)  # a unique-key race, found by the block's end


def test_a_value_sqlalchemy_would_compute_must_be_given(hub_database_url: str) -> None:
    """A column default is computed in SQLAlchemy's execution path, which this skips."""
    engine = make_engine(hub_database_url)
    row = {"name": "n", "open": True, "body": b"", "at": AT}  # no "kind"
    try:
        with engine.connect() as connection, pytest.raises(AssertionError, match="no value"):
            ADD.run(connection, row)
    finally:
        engine.dispose()


blocks_meta = MetaData()
held_blocks = Table(
    "held_blocks", blocks_meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *block_columns(),
)  # fmt: skip


def test_blocks_around_many_ranges_are_found_in_one_statement_as_range_by_range(
    hub_database_url: str,
) -> None:
    """The lookup of many ranges at once (PostgreSQL) finds exactly what the lookup range by
    range finds: blocks before, inside, touching and across ranges, at both ends of 64 bits."""
    engine = make_engine(hub_database_url)
    blocks_meta.create_all(engine)
    unit = UnitAttributes("GHA01", 2024, "", "", "", Purpose.UNSPECIFIED,
                          UnitKind.MITIGATION_OUTCOME, UnitState.HELD)  # fmt: skip
    stored = [(1, 5), (6, 10), (20, 29), (31, 31), (40, 100), (2**64 - 10, 2**64 - 1)]
    ranges = [Block(3, 3, None), Block(11, 19, None), Block(30, 30, None), Block(45, 50, None),
              Block(200, 300, None), Block(2**64 - 3, 2**64 - 2, None)]  # fmt: skip
    try:
        with engine.begin() as connection:
            connection.execute(insert(held_blocks), [
                block_row(Block(first, last, unit)) for first, last in stored
            ])  # fmt: skip
            connection.execute(
                insert(held_blocks),
                [block_row(Block(1, 9, replace(unit, originating_registry="CHE01")))],
            )  # another space, never found
            for margin in (0, 1):
                at_once = rows_around(connection, held_blocks, "GHA01", ranges, margin)
                one_by_one: dict[int, object] = {}
                for wanted in ranges:
                    one_by_one |= rows_around(connection, held_blocks, "GHA01", [wanted], margin)
                assert sorted(at_once) == sorted(one_by_one)
                found = sorted((from_db(r.serial_first), from_db(r.serial_last))
                               for r in at_once.values())  # fmt: skip
                if margin == 0:
                    assert found == [(1, 5), (40, 100), (2**64 - 10, 2**64 - 1)]
                else:  # touching neighbours too
                    assert found == [(1, 5), (6, 10), (20, 29), (31, 31), (40, 100),
                                     (2**64 - 10, 2**64 - 1)]  # fmt: skip
    finally:
        engine.dispose()


def test_a_tree_built_from_the_database_s_texts_is_the_tree_of_the_blocks(
    registry_database_url: str,
) -> None:
    """A registry's snapshot tree, made from the texts the database writes of its rows,
    equals one made from its blocks: every node, the totals, and each leaf's blocks."""
    engine = store.open_database(registry_database_url)
    unit = UnitAttributes("GHA01", 2024, "CA0001", "GHA", "GHA-1", Purpose.NDC, UnitKind.ITMO,
                          UnitState.HELD, metric="tCO2e")  # fmt: skip
    try:
        with engine.begin() as connection:
            spaces = ("GHA01", "CHE01", "A64MR")
            rows = [
                {"account_id": f"GHA01-{n % 7}", **block_row(Block(
                    n * 100 + 1, n * 100 + 50 + n % 3,
                    replace(unit, vintage=2021 + n % 4, originating_registry=spaces[n % 3]),
                ))}
                for n in range(300)
            ]  # fmt: skip
            # Serials at both ends and either side of 2**63, where the database's text of a
            # stored serial changes branch (article6.block_table._serial_text).
            for first, last in ((0, 0), (2**63 - 3, 2**63 - 1), (2**63, 2**63 + 2),
                                (2**64 - 5, 2**64 - 1)):  # fmt: skip
                rows.append({"account_id": "GHA01-9", **block_row(Block(first, last, unit))})
            connection.execute(insert(store.holdings), rows)
            from_rows = store.holdings_tree(connection, 16, 2)
            store_blocks = store.all_holdings(connection, "GHA01")
            built = Tree.build(store_blocks, 16, 2)
            assert from_rows.levels == built.levels
            assert from_rows.totals == block_totals(store_blocks)  # summed by the database
            for leaf in range(16**2):
                places = from_rows.places([leaf])
                assert places == built.places([leaf])
                assert store.holdings_at(connection, "GHA01", places) == built.blocks([leaf])
    finally:
        engine.dispose()
