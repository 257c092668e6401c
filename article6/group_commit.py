"""Group commit: the writer thread commits every state change waiting for it in one SQL
transaction, one savepoint each.

A commit costs an fsync (SQLite ``synchronous=FULL``, PostgreSQL's WAL flush) and, at the
hub, the audit head's signature. Under load, changes queue while the previous commit is on
its way to disk; taking all of them together pays those costs once per group instead of once
per change, and adds no wait when the process is idle (a lone change is committed at once,
on its own).

Each change still behaves as if it were alone:

- it runs in its own savepoint, so a change that raises (a numbered refusal, a unique-key
  race with another hub) is rolled back alone, with the audit entries and after-commit
  actions it noted, and the others commit;
- its caller is answered only after the group's commit succeeded, so no receipt leaves
  before its effects are durable;
- the rows the changes kept for the commit (``Unit.insert``: history, queued messages) are
  written for the whole group just before it, so a failure there is the commit's;
- if the commit itself fails, nothing of the group was written, and each change is run again
  in a transaction of its own, as it would have been without grouping;
- a change that loses a unique-key race to another hub (``IntegrityError``), or finds a row
  it read changed by another hub (``WriteConflict``), is run again, up to
  ``WRITE_CONFLICT_ATTEMPTS`` times, whether it runs alone or in a group: one rule for
  write conflicts, at the hub and at every registry.

At most ``MAX_WAITING_CHANGES`` changes wait for the writer; beyond, ``apply`` waits for room,
so a flood holds back its senders (their RPCs wait) instead of growing a queue.

Each change is given the group's ``article6.unit.Unit``, which holds what it noted.

On PostgreSQL, changes take advisory locks on serial spaces (``Unit.lock_spaces``). Only the first
change of a group may wait for one: the others try, and a change that finds its space busy is
rolled back and goes first in the next group. A group therefore never waits while holding
locks, and two hubs' groups cannot deadlock.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from article6.limits import MAX_CHANGES_PER_COMMIT, MAX_WAITING_CHANGES, WRITE_CONFLICT_ATTEMPTS
from article6.unit import SpaceBusy, Unit, WriteConflict

log = logging.getLogger("article6.group_commit")

Work = Callable[[Unit], Any]


@dataclass
class Change:
    work: Work
    future: Future[Any] = field(default_factory=Future)


@dataclass(frozen=True)
class _Done:
    result: Any
    actions: list[Callable[[], None]]


class Owner(Protocol):
    """What the database's owner lends the writer: its engine, and what it writes into every
    transaction just before the commit (the hub chains and signs its audit entries)."""

    engine: Engine

    def seal(self, unit: Unit) -> None: ...


class Plain:
    """An owner that writes nothing of its own at commit: a registry's books."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def seal(self, unit: Unit) -> None:
        assert not unit.entries, "a registry keeps no audit trail"


class GroupWriter:
    """One thread that applies changes in groups: ``apply`` from the event loop (at most
    MAX_WAITING_CHANGES wait for the writer; beyond, callers wait for room, so that a flood
    holds back its senders instead of growing a queue), ``submit`` from any thread."""

    def __init__(self, owner: Owner) -> None:
        self._owner = owner
        self._changes: queue.SimpleQueue[Change | None] = queue.SimpleQueue()
        self._room = asyncio.Semaphore(MAX_WAITING_CHANGES)
        self._deferred: list[Change] = []
        self._thread = threading.Thread(target=self._loop, name="db-writer", daemon=True)
        self._thread.start()

    async def apply(self, work: Work) -> Any:
        """Apply ``work``; returns once its commit is durable."""
        async with self._room:
            return await asyncio.wrap_future(self.submit(work))

    def submit(self, work: Work) -> Future[Any]:
        change = Change(work)
        self._changes.put(change)
        return change.future

    def close(self) -> None:
        self._changes.put(None)
        self._thread.join()

    def now(self, work: Work) -> Any:
        """Run ``work`` in one transaction on the calling thread (startup, tests, the writer's
        lone changes), then the actions it noted with ``after_commit``, once the commit
        succeeded. It runs once: the writer runs a change that lost a race again."""
        with self._owner.engine.begin() as connection:
            unit = Unit(connection, defer=True)
            result = work(unit)
            unit.catch_up()
            self._seal(unit)
        for action in unit.take_actions():
            action()
        return result

    # --- the writer thread -----------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            group = self._next_group()
            if group is None:
                return
            try:
                self._apply(group)
            except Exception as error:  # a fault of ours: fail these changes, keep writing
                log.exception("a commit group failed")
                for change in group:
                    if not change.future.done():
                        change.future.set_exception(error)

    def _next_group(self) -> list[Change] | None:
        """The deferred changes first, then whatever is waiting (blocking only when idle).
        A change whose caller gave up before it started (a cancelled RPC) is dropped, as an
        executor drops cancelled work; from here on a change can no longer be cancelled."""
        group, self._deferred = self._deferred, []
        while not group:
            first = self._changes.get()
            if first is None:
                return None
            if first.future.set_running_or_notify_cancel():
                group.append(first)
        while len(group) < MAX_CHANGES_PER_COMMIT:
            try:
                change = self._changes.get_nowait()
            except queue.Empty:
                break
            if change is None:  # stop after this group
                self._changes.put(None)
                break
            if change.future.set_running_or_notify_cancel():
                group.append(change)
        return group

    def _apply(self, group: list[Change]) -> None:
        if len(group) == 1:
            _settle(group[0], partial(self._alone, group[0].work))
            return
        try:
            outcomes = self._commit(group)
        except Exception:  # nothing was written: each change again, alone
            for change in group:
                _settle(change, partial(self._alone, change.work))
            return
        for change, outcome in zip(group, outcomes, strict=True):
            if outcome is None:
                self._deferred.append(change)
            elif isinstance(outcome, _Done):
                _settle(change, partial(_after, outcome))
            else:
                change.future.set_exception(outcome)

    def _commit(self, group: list[Change]) -> list[_Done | BaseException | None]:
        """One transaction: a savepoint per change, then the audit seal and the commit."""
        outcomes: list[_Done | BaseException | None] = []
        with self._owner.engine.begin() as connection:
            unit = Unit(connection, defer=True)
            for index, change in enumerate(group):
                outcomes.append(self._one(unit, change.work, first=index == 0))
            self._seal(unit)
        return outcomes

    def _seal(self, unit: Unit) -> None:
        """Just before the commit: the rows the unit kept (history, queued messages: a
        statement a table), then what the database's owner writes (the hub's audit seal)."""
        unit.flush()
        self._owner.seal(unit)

    def _alone(self, work: Work) -> Any:
        """A change in a transaction of its own, run again if it lost a unique-key race to
        another hub or found a row changed by one, as in a group (``_one``): one rule for
        write conflicts everywhere."""
        for attempt in range(1, WRITE_CONFLICT_ATTEMPTS + 1):
            try:
                return self.now(work)
            except (IntegrityError, WriteConflict):
                if attempt == WRITE_CONFLICT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _one(unit: Unit, work: Work, first: bool) -> _Done | BaseException | None:
        """A change in its savepoint: done, its exception, or None (deferred: space busy).
        Only the group's first change may wait for another process's locks."""
        failure: BaseException | None = None
        for _ in range(WRITE_CONFLICT_ATTEMPTS):
            unit.may_wait = first
            try:
                with unit.savepoint() as mark:
                    result = work(unit)
                    unit.catch_up()  # before the next change reads what this one wrote
            except (IntegrityError, WriteConflict) as error:  # another hub was first: look again
                failure = error
                continue
            except SpaceBusy:
                return None
            except Exception as error:  # the caller's, raised to it alone
                return error
            return _Done(result, unit.take_actions(mark))
        assert failure is not None
        return failure


def _after(outcome: _Done) -> Any:
    for action in outcome.actions:
        action()
    return outcome.result


def _settle(change: Change, run: Callable[[], Any]) -> None:
    try:
        change.future.set_result(run())
    except Exception as error:  # handed to the change's caller
        change.future.set_exception(error)
