"""Engines, migrations and the unit of work.

Every state change runs as one SQL transaction on the **writer** thread (``Database.write``),
so a process never races itself for SQLite's write lock, and each change commits its inbox
record, its state, its outbox rows and its audit entries together or not at all. Reads that
need no lock run on reader threads. SQLite runs in WAL mode with ``synchronous=FULL``: a
commit is on disk before a receipt leaves. On PostgreSQL several hub processes share one
database; their conflicting changes are ordered by transaction-scoped advisory locks, one per
serial space (``lock_spaces``), and a unique-key race (two hubs recording the same message)
is retried, after which the loser finds the winner's record. The audit trail's head row is
locked last, just before the commit, so it orders the chain without widening any other lock.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from article6.keys import SigningKey
from article6.sql import make_engine
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


_AFTER_COMMIT = "a6_after_commit"


def after_commit(connection: Connection, action: Callable[[], None]) -> None:
    """Run ``action`` once the current transaction has committed (never if it rolls back):
    for effects outside the database, such as metrics."""
    connection.info.setdefault(_AFTER_COMMIT, []).append(action)


def lock_spaces(connection: Connection, spaces: Iterable[str]) -> None:
    """Serialize transactions on the same serial spaces across processes (PostgreSQL).

    Taken in sorted order, so two transactions never wait on each other in a cycle. SQLite
    needs none: its write lock already serializes every writer.
    """
    if connection.dialect.name != "postgresql":
        return
    for space in sorted(set(spaces)):
        key = zlib.crc32(space.encode())
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


class Database:
    """The hub's database: one writer thread, a few reader threads."""

    def __init__(self, url: str, signer: SigningKey | None = None) -> None:
        self.url = url
        self.signer = signer  # signs the audit trail's head
        self.engine = make_engine(url, immediate=True)
        self.read_engine = (
            make_engine(url, immediate=False) if url.startswith("sqlite") else (self.engine)
        )
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="db-writer")
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="db-reader")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        migrate(self.engine)

    def write_now(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction on the calling thread (startup, tests, CLI), then
        the actions it registered with ``after_commit``, once the commit succeeded."""
        for attempt in Retrying(
            retry=retry_if_exception_type(IntegrityError), stop=stop_after_attempt(3), reraise=True
        ):
            with attempt:
                with self.engine.begin() as connection:
                    connection.info.pop(_AFTER_COMMIT, None)
                    audit.discard(connection)  # left by an attempt that rolled back
                    result = work(connection)
                    audit.seal(connection, self.signer)
                    actions: list[Callable[[], None]] = connection.info.pop(_AFTER_COMMIT, [])
                for action in actions:
                    action()
                return result
        raise AssertionError("unreachable")

    def read_now(self, work: Callable[[Connection], T]) -> T:
        with self.read_engine.connect() as connection:
            return work(connection)

    async def write(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, self.write_now, work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, self.read_now, work)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.engine.dispose()
        self.read_engine.dispose()
