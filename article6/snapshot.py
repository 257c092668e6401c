"""A read transaction pinned at one moment: the books as they were then, for as long as a
reconciliation asks about them, while writers go on.

SQLite in WAL mode gives a read transaction the database as of its first read, for as long as
the transaction lasts; PostgreSQL's REPEATABLE READ gives it the database as of its first
statement. Pinning is that first read, done before ``Snapshot`` returns, so nothing committed
afterwards is seen. A connection serves one thread at a time, so each snapshot has its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Connection, Engine, Table, select

T = TypeVar("T")
SNAPSHOT = "a6_snapshot"  # the execution option that makes make_engine's SQLite BEGIN plain


class Snapshot:
    """``table``'s database as of the moment this was made."""

    def __init__(self, engine: Engine, table: Table) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="snapshot")
        try:
            self._connection = self._thread.submit(_pinned, engine, table).result()
        except BaseException:
            self._thread.shutdown(wait=False)
            raise
        self.closed = False

    def submit(self, work: Callable[[Connection], T]) -> Future[T]:
        """Start ``work`` on the pinned connection, on the snapshot's own thread."""
        assert not self.closed, "a closed snapshot"
        return self._thread.submit(work, self._connection)

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.wrap_future(self.submit(work))

    def close(self) -> None:
        """End the read transaction (SQLite may then checkpoint past it again)."""
        if self.closed:
            return
        self.closed = True
        self._thread.submit(self._connection.close)  # rolls the read transaction back
        self._thread.shutdown(wait=False)


def _pinned(engine: Engine, table: Table) -> Connection:
    connection = engine.connect()
    try:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
        else:
            connection.execution_options(**{SNAPSHOT: True})
        connection.begin()
        connection.execute(select(table.c.space).limit(1)).all()  # the first read pins it
    except BaseException:
        connection.close()
        raise
    return connection
