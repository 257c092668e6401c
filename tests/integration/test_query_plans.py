"""The queries that idle loops run over and over use an index, so that an idle process costs
the same whatever its history (SQLite's own query plans, not timings)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event

from article6.node import store
from article6.outbox import claim
from gateway.reads import Reads
from gateway.storage.database import Database
from gateway.storage.records import expired_transactions
from gateway.storage.schema import outbox


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT run on ``engine`` meanwhile, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def full_scans(engine: Engine, work: Callable[[Connection], Any]) -> list[str]:
    """The plan lines of ``work``'s SELECTs that read a whole table."""
    with statements(engine) as seen, engine.connect() as connection:
        work(connection)
    scans = []
    with engine.connect() as connection:
        for statement, parameters in seen:
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            scans += [row[3] for row in plan if row[3].startswith("SCAN ")]
    return scans


LEASE = timedelta(seconds=12)


def test_a_registrys_pump_and_recovery_read_only_what_is_due(tmp_path: Path) -> None:
    engine = store.open_database(f"sqlite:///{tmp_path / 'registry.db'}")
    later = store.utcnow() - timedelta(seconds=30)
    assert full_scans(engine, lambda c: claim(c, store.outbox, datetime.now(UTC), 256, LEASE)) == []
    assert full_scans(engine, lambda c: store.unsettled(c, older_than=later)) == []


def test_an_index_added_later_is_created_on_an_existing_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = store.open_database(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_outbox_state_next")
    engine.dispose()
    engine = store.open_database(url)  # as a registry started on an older file
    assert full_scans(engine, lambda c: claim(c, store.outbox, datetime.now(UTC), 256, LEASE)) == []


def test_the_hubs_claims_and_time_out_sweep_read_only_what_is_due(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    database.migrate()
    now = datetime.now(UTC)
    try:
        claims = full_scans(database.engine, lambda c: claim(c, outbox, now, 64, LEASE, ["CHE01"]))
        assert claims == []
        assert full_scans(database.engine, lambda c: expired_transactions(c, now, 100)) == []
    finally:
        database.close()


def test_what_a_batch_of_proposals_reads_ahead_uses_an_index(tmp_path: Path) -> None:
    """Once a batch, for every batch: whatever the number of runs, discrepancies and
    transactions recorded, each is a lookup (gateway.reads)."""
    database = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    database.migrate()
    try:
        named = ["GHA01-1", "GHA01-2"]
        read = partial(Reads.of, named=named, proposing=["GHA01", "CHE01"], confirmations=False)
        assert full_scans(database.engine, read) == []
    finally:
        database.close()
