"""The unit of work: one SQL transaction, and everything that waits for its commit.

Every state change, at the hub and at every registry, is given a ``Unit``, never a bare
connection with notes hidden on it. The unit owns:

- the connection its statements run on (``connection``);
- the audit entries noted by the change (``record``), which the owner of the database writes
  and chains just before the commit (the hub's ``seal``), so they commit with the change;
- the actions to run once the commit is durable (``after_commit``), for effects outside the
  database such as handing a queued message to the deliverer or counting a metric;
- whether the change may wait for another process's locks (``lock_spaces``): only the first
  change of a commit group may (``article6.group_commit``);
- rows for append-only tables that nothing in the transaction reads back (``insert``: a
  transaction's history, queued messages): a unit made by the group writer keeps them, and
  ``flush`` writes them just before the commit, one statement a table for the whole group
  (one round trip on PostgreSQL) rather than one a row;
- writes a change keeps back to make them together (``write_behind``: a hub batch's new
  transactions, their status changes and its changes to the ledger and the locks), made when
  the change ends, or earlier when something is about to read those tables another way
  (``catch_up``); a kept write that finds a row changed by another process since it was read
  raises ``WriteConflict``, and the writer runs the change again;
- savepoints (``savepoint``): a change, or a step of one, that raises is rolled back alone,
  and takes the entries, actions and rows it noted with it (``mark``, ``rewind``), and runs
  the undo actions it noted (``on_rewind``) for what it changed outside the database that
  must follow the database (a hub batch's copy of the ledger it read ahead).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, NamedTuple

from sqlalchemy import Connection, text

from article6.direct import Direct

AuditNote = tuple[str, str, str, str, dict[str, Any]]
"""An audit entry waiting for the commit: (at, actor, action, subject, detail)."""


class Mark(NamedTuple):
    """Where a unit's notes stand (``Unit.mark``): how many there are of each."""

    entries: int
    actions: int
    rows: int
    written: int  # rows in the database
    locked: int  # serial spaces locked
    undo: int  # actions undoing changes to what a change keeps outside the database


START = Mark(0, 0, 0, 0, 0, 0)


class SpaceBusy(Exception):
    """A change later in a group found a serial space locked by another transaction."""


class WriteConflict(Exception):
    """A write found a row no longer as the change read it: another process (a second hub on
    the same database) changed it since. Like a lost unique-key race, the change is run
    again from its reads (``article6.group_commit``)."""


@dataclass
class Later:
    """A row given to ``Unit.insert``: its primary key once written."""

    id: int | None = None


Kept = tuple[Direct, dict[str, Any], Later]
"""A row kept for the flush: the INSERT, its values, and where its id goes."""


@dataclass
class Unit:
    """One SQL transaction as a change sees it, and what waits for its commit."""

    connection: Connection
    may_wait: bool = True  # False for a change that is not the first of its commit group
    defer: bool = False  # True: rows given to ``insert`` wait for ``flush`` (the group writer)
    entries: list[AuditNote] = field(default_factory=list)
    actions: list[Callable[[], None]] = field(default_factory=list)
    rows: list[Kept] = field(default_factory=list)
    written: int = 0  # how many of ``rows`` are in the database
    locked: list[str] = field(default_factory=list)  # serial spaces locked (PostgreSQL)
    undo: list[Callable[[], None]] = field(default_factory=list)  # ``on_rewind``, in order
    behind: list[Callable[[], None]] = field(default_factory=list)  # ``write_behind``

    def record(self, actor: str, action: str, subject: str, **detail: Any) -> None:
        """Note an audit entry; it is written when the transaction commits, or never."""
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        self.entries.append((at, actor, action, subject, detail))

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the transaction has committed (never if it rolls back)."""
        self.actions.append(action)

    def on_rewind(self, action: Callable[[], None]) -> None:
        """Run ``action`` if what was done since the innermost savepoint is rolled back: it
        undoes a change to something kept outside the database that follows the database
        (a batch's copy of rows it read ahead, say), so that the two stay alike."""
        self.undo.append(action)

    def write_behind(self, write: Callable[[], None]) -> None:
        """Have ``write`` make the writes kept back by something of this change (a hub
        batch's, gateway.reads): the writer calls it when the change ends
        (``catch_up``), so nothing kept back outlives its change. Registered inside a
        savepoint that rolls back, it is forgotten with what it kept."""
        self.on_rewind(partial(self._forget_writer, len(self.behind)))
        self.behind.append(write)

    def catch_up(self) -> None:
        """Make the writes kept back (``write_behind``) now: at the end of a change, and by
        any step that reads the tables they change other than through what kept them (a leg
        confirmation reading the ledger, say). Writers with nothing kept do nothing."""
        for write in self.behind:
            write()

    def _forget_writer(self, count: int) -> None:
        del self.behind[count:]

    def insert(self, statement: Direct, row: dict[str, Any]) -> Later:
        """Insert ``row`` with ``statement`` (an INSERT into an append-only table that nothing
        in this transaction reads back): at once, or at ``flush`` when the unit defers. The
        row's id is known once written, so read it only after the commit (``after_commit``)."""
        later = Later()
        if self.defer:
            self.rows.append((statement, row, later))
        else:
            later.id = statement.insert_all(self.connection, [row])[0]
        return later

    def flush(self) -> None:
        """Write the rows kept by ``insert``: one statement for all the rows of a statement
        (rows with the same columns), in the order each statement was first given one. A
        flush inside a savepoint that then rolls back is undone with it (``rewind``), and
        those rows are written again by the next."""
        batches: dict[tuple[int, frozenset[str]], list[Kept]] = {}
        for kept in self.rows[self.written :]:
            batches.setdefault((id(kept[0]), frozenset(kept[1])), []).append(kept)
        self.written = len(self.rows)
        for batch in batches.values():
            ids = batch[0][0].insert_all(self.connection, [row for _, row, _ in batch])
            for (_, _, later), row_id in zip(batch, ids, strict=True):
                later.id = row_id

    def lock_spaces(self, spaces: Iterable[str]) -> None:
        """Serialize transactions on the same serial spaces across processes (PostgreSQL).

        Taken in sorted order, so two transactions never wait on each other in a cycle; a
        change that may not wait (not the first of its commit group) only tries, and raises
        ``SpaceBusy`` if a space is held, so that a group never waits while holding locks.
        SQLite needs none: its write lock already serializes every writer.
        """
        if self.connection.dialect.name != "postgresql":
            return
        for space in sorted(set(spaces).difference(self.locked)):  # held until the commit
            key = zlib.crc32(space.encode())
            if self.may_wait:
                self.connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            elif not self.connection.execute(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}
            ).scalar_one():
                raise SpaceBusy(space)
            self.locked.append(space)

    @contextmanager
    def savepoint(self) -> Iterator[Mark]:
        """A savepoint: what raises inside is rolled back, with the notes made since. Gives
        the mark it began at (``take_actions`` from there: the actions noted inside)."""
        mark = self.mark()
        try:
            with self.connection.begin_nested():
                yield mark
        except BaseException:
            self.rewind(mark)
            raise

    def mark(self) -> Mark:
        """Where the notes stand: a change's savepoint begins here."""
        return Mark(
            len(self.entries), len(self.actions), len(self.rows), self.written, len(self.locked),
            len(self.undo),
        )  # fmt: skip

    def rewind(self, mark: Mark) -> None:
        """Forget what was noted after ``mark``: a change rolled back to its savepoint, and
        with it any rows written since (the earlier of which are to be written again) and
        any locks taken since (a rolled-back savepoint releases them); the ``on_rewind``
        actions noted since run, latest first."""
        for action in reversed(self.undo[mark.undo :]):
            action()
        del self.undo[mark.undo :]
        del self.entries[mark.entries :], self.actions[mark.actions :], self.rows[mark.rows :]
        del self.locked[mark.locked :]
        self.written = min(self.written, mark.written)

    def take_actions(self, mark: Mark = START) -> list[Callable[[], None]]:
        """The after-commit actions noted since ``mark``, handed to whoever answers that
        change once the commit is durable."""
        taken = self.actions[mark.actions :]
        del self.actions[mark.actions :]
        return taken

    def take_entries(self) -> list[AuditNote]:
        taken, self.entries = self.entries, []
        return taken
