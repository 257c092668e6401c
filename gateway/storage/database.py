"""Engines, migrations and the unit of work.

Every state change runs on the **writer** thread (``Database.write``), so a process never
races itself for SQLite's write lock, and each change commits its inbox record, its state, its
outbox rows and its audit entries together or not at all: alone, or with the other changes
waiting at that moment in one group commit, one savepoint each (``article6.group_commit``),
and its caller is answered only once the commit is durable. A change is given a unit of work
(``article6.unit.Unit``), which holds its audit entries and after-commit actions. Reads that
need no lock run on reader threads. SQLite runs in WAL mode with ``synchronous=FULL``: a
commit is on disk before a receipt leaves. On PostgreSQL several hub processes share one
database; their conflicting changes are ordered by transaction-scoped advisory locks, one per
serial space (``Unit.lock_spaces``), and a unique-key race (two hubs recording the same message)
is retried, after which the loser finds the winner's record. The audit trail's head row is
locked last, just before the commit, so it orders the chain without widening any other lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

from article6.group_commit import GroupWriter
from article6.keys import SigningKey
from article6.sql import make_engine, opening
from article6.unit import Unit
from gateway.storage import audit

T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (several processes may call this at once)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7110)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Database:
    """The hub's database: one writer thread that commits changes in groups
    (``group_commit``), a few reader threads."""

    def __init__(self, url: str, signer: SigningKey | None = None) -> None:
        self.url = url
        self.signer = signer  # signs the audit trail's head
        with opening(url):
            self.engine = make_engine(url, immediate=True)
            self.read_engine = (
                make_engine(url, immediate=False) if url.startswith("sqlite") else (self.engine)
            )
            with self.engine.connect():  # a database that cannot be reached says so here, once
                pass
        self._writer = GroupWriter(self)
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="db-reader")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        with opening(self.url):
            migrate(self.engine)

    def write_now(self, work: Callable[[Unit], T]) -> T:
        """Run ``work`` in one transaction on the calling thread (startup, tests), then the
        actions it noted with ``Unit.after_commit``, once the commit succeeded."""
        result: T = self._writer.now(work)
        return result

    def seal(self, unit: Unit) -> None:
        """Just before each commit: chain and sign the audit entries the unit noted."""
        audit.seal(unit.connection, unit.take_entries(), self.signer)

    def read_now(self, work: Callable[[Connection], T]) -> T:
        with self.read_engine.connect() as connection:
            return work(connection)

    async def write(self, work: Callable[[Unit], T]) -> T:
        """Apply ``work`` on the writer thread; it commits with whatever else is waiting, and
        returns once the commit is durable."""
        result: T = await self._writer.apply(work)
        return result

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, self.read_now, work)

    def close(self) -> None:
        self._writer.close()
        self._readers.shutdown(wait=True)
        self.engine.dispose()
        self.read_engine.dispose()
