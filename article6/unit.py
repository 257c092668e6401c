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
- savepoints (``savepoint``): a change, or a step of one, that raises is rolled back alone,
  and takes the entries and actions it noted with it (``mark``, ``rewind``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

AuditNote = tuple[str, str, str, str, dict[str, Any]]
"""An audit entry waiting for the commit: (at, actor, action, subject, detail)."""


class SpaceBusy(Exception):
    """A change later in a group found a serial space locked by another transaction."""


@dataclass
class Unit:
    """One SQL transaction as a change sees it, and what waits for its commit."""

    connection: Connection
    may_wait: bool = True  # False for a change that is not the first of its commit group
    entries: list[AuditNote] = field(default_factory=list)
    actions: list[Callable[[], None]] = field(default_factory=list)

    def record(self, actor: str, action: str, subject: str, **detail: Any) -> None:
        """Note an audit entry; it is written when the transaction commits, or never."""
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        self.entries.append((at, actor, action, subject, detail))

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the transaction has committed (never if it rolls back)."""
        self.actions.append(action)

    def lock_spaces(self, spaces: Iterable[str]) -> None:
        """Serialize transactions on the same serial spaces across processes (PostgreSQL).

        Taken in sorted order, so two transactions never wait on each other in a cycle; a
        change that may not wait (not the first of its commit group) only tries, and raises
        ``SpaceBusy`` if a space is held, so that a group never waits while holding locks.
        SQLite needs none: its write lock already serializes every writer.
        """
        if self.connection.dialect.name != "postgresql":
            return
        for space in sorted(set(spaces)):
            key = zlib.crc32(space.encode())
            if self.may_wait:
                self.connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            elif not self.connection.execute(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}
            ).scalar_one():
                raise SpaceBusy(space)

    @contextmanager
    def savepoint(self) -> Iterator[tuple[int, int]]:
        """A savepoint: what raises inside is rolled back, with the notes made since. Gives
        the mark it began at (``take_actions`` from there: the actions noted inside)."""
        mark = self.mark()
        try:
            with self.connection.begin_nested():
                yield mark
        except BaseException:
            self.rewind(mark)
            raise

    def mark(self) -> tuple[int, int]:
        """Where the notes stand: a change's savepoint begins here."""
        return len(self.entries), len(self.actions)

    def rewind(self, mark: tuple[int, int]) -> None:
        """Forget what was noted after ``mark``: a change rolled back to its savepoint."""
        del self.entries[mark[0] :], self.actions[mark[1] :]

    def take_actions(self, mark: tuple[int, int] = (0, 0)) -> list[Callable[[], None]]:
        """The after-commit actions noted since ``mark``, handed to whoever answers that
        change once the commit is durable."""
        taken = self.actions[mark[1] :]
        del self.actions[mark[1] :]
        return taken

    def take_entries(self) -> list[AuditNote]:
        taken, self.entries = self.entries, []
        return taken
