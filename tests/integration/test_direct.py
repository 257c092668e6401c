"""Statements run on the driver (article6.direct) behave as SQLAlchemy's own execution does:
the same values back, the same transaction, the same errors (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    exc,
    insert,
    select,
    update,
)

from article6.direct import Direct
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


def test_a_value_sqlalchemy_would_compute_must_be_given(hub_database_url: str) -> None:
    """A column default is computed in SQLAlchemy's execution path, which this skips."""
    engine = make_engine(hub_database_url)
    row = {"name": "n", "open": True, "body": b"", "at": AT}  # no "kind"
    try:
        with engine.connect() as connection, pytest.raises(AssertionError, match="no value"):
            ADD.run(connection, row)
    finally:
        engine.dispose()
