"""Group commit: changes waiting for the writer commit together, yet each behaves as if alone.

A first change holds the writer until the others are queued, so they form one group.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, event, exc, insert, select, text

from article6.codes import Code, Refusal
from article6.direct import Direct
from article6.limits import MAX_WAITING_CHANGES, WRITE_CONFLICT_ATTEMPTS
from article6.unit import Unit, WriteConflict
from gateway.storage import audit
from gateway.storage.database import Database
from gateway.storage.schema import transaction_history
from tests.builders import T0
from tests.databases import postgres_database


@pytest.fixture
def database(hub_database_url: str) -> Iterator[Database]:
    database = Database(hub_database_url)
    database.migrate()
    yield database
    database.close()


def _commits(database: Database) -> list[int]:
    counted: list[int] = []
    event.listen(database.engine, "commit", lambda _: counted.append(1))
    return counted


def _subjects(database: Database) -> list[str]:
    return database.read_now(lambda c: [e.subject for e, _ in audit.entries(c)])


def _note(subject: str, ran: list[str]) -> Callable[[Unit], str]:
    def work(unit: Unit) -> str:
        unit.record("test", "noted", subject)
        unit.after_commit(lambda: ran.append(subject))
        return subject

    return work


async def _grouped(database: Database, works: list[Callable[[Unit], Any]]) -> list[Any]:
    """Run ``works`` as one group: a first change holds the writer until all are queued."""
    release = threading.Event()
    holder = asyncio.ensure_future(database.write(lambda unit: release.wait(10)))
    await asyncio.sleep(0.1)  # the holder is on the writer thread
    pending = [asyncio.ensure_future(database.write(work)) for work in works]
    await asyncio.sleep(0.1)
    release.set()
    await holder
    return await asyncio.gather(*pending, return_exceptions=True)


def test_a_group_commits_once_and_a_failing_change_takes_only_its_own_notes(
    database: Database,
) -> None:
    commits, ran = _commits(database), []

    def refused(unit: Unit) -> None:
        unit.record("test", "noted", "refused")
        unit.after_commit(lambda: ran.append("refused"))
        raise Refusal(Code.TRANSACTION_UNKNOWN, "no such transaction")

    works = [_note("a", ran), refused, _note("b", ran), _note("c", ran)]
    results = asyncio.run(_grouped(database, works))

    assert [results[0], *results[2:]] == ["a", "b", "c"]
    assert isinstance(results[1], Refusal)
    assert results[1].code is Code.TRANSACTION_UNKNOWN
    assert len(commits) == 2  # the holder alone, then the group of four
    assert ran == ["a", "b", "c"]
    assert _subjects(database) == ["a", "b", "c"]
    _, verdict = database.read_now(lambda c: audit.verified(c, lambda head: True))
    assert verdict.intact  # one chain, the refused change's entry never in it


def test_a_failed_group_commit_runs_each_change_again_alone(database: Database) -> None:
    ran: list[str] = []
    seal, failures = database.seal, [1]

    def failing_once(unit: Unit) -> None:
        if failures and len(unit.entries) == 3:  # the group's commit, not the holder's
            failures.pop()
            raise RuntimeError("the disk is full")
        seal(unit)

    database.seal = failing_once  # type: ignore[method-assign]
    results = asyncio.run(_grouped(database, [_note(s, ran) for s in "xyz"]))

    assert not failures
    assert results == ["x", "y", "z"]
    assert ran == ["x", "y", "z"]
    assert _subjects(database) == ["x", "y", "z"]  # each exactly once


@pytest.mark.postgres
def test_a_busy_space_defers_a_later_change_so_a_group_never_waits_holding_locks() -> None:
    with postgres_database() as url:
        asyncio.run(_busy_space(url))


async def _busy_space(url: str) -> None:
    database = Database(url)
    database.migrate()
    outside = database.engine.connect()
    try:
        held = outside.begin()
        Unit(outside).lock_spaces(["GHA01"])  # another hub's transaction holds GHA01's space
        ran: list[str] = []

        def on_gha01(unit: Unit) -> str:
            unit.lock_spaces(["GHA01"])
            return _note("gha01", ran)(unit)

        release = threading.Event()
        holder = asyncio.ensure_future(database.write(lambda unit: release.wait(10)))
        await asyncio.sleep(0.1)
        other = asyncio.ensure_future(database.write(_note("che01", ran)))
        waiting = asyncio.ensure_future(database.write(on_gha01))  # second in the group
        await asyncio.sleep(0.1)
        release.set()
        assert await asyncio.wait_for(other, 10) == "che01"  # committed without waiting
        assert not waiting.done()  # deferred, then first of the next group: it waits
        held.commit()
        assert await asyncio.wait_for(waiting, 10) == "gha01"
        await holder
        assert _subjects(database) == ["che01", "gha01"]
    finally:
        outside.close()
        database.close()


@pytest.mark.parametrize(
    "conflict",
    [
        exc.IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed")),
        WriteConflict("1 of 1 transactions changed since read (T1)"),
    ],
    ids=["unique-key race", "row changed"],
)
def test_a_change_that_lost_a_race_runs_again_alone_as_in_a_group(
    database: Database, conflict: Exception
) -> None:
    """Another hub inserted the same row first, or changed a row the change read."""
    calls: list[int] = []

    def lost_once(unit: Unit) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise conflict
        return "recorded"

    assert asyncio.run(database.write(lost_once)) == "recorded"
    assert len(calls) == 2
    calls.clear()
    grouped = asyncio.run(_grouped(database, [lost_once, _note("other", [])]))
    assert grouped == ["recorded", "other"]
    assert len(calls) == 2
    calls.clear()

    def always_lost(unit: Unit) -> None:
        calls.append(1)
        raise conflict

    with pytest.raises(type(conflict)):
        asyncio.run(database.write(always_lost))
    assert len(calls) == WRITE_CONFLICT_ATTEMPTS


def test_the_writers_queue_is_bounded_and_a_flood_waits_for_room(database: Database) -> None:
    async def flood() -> tuple[int, list[Any]]:
        release = threading.Event()
        holder = asyncio.ensure_future(database.write(lambda unit: release.wait(10)))
        await asyncio.sleep(0.1)  # the holder is on the writer thread
        pending = [asyncio.ensure_future(database.write(_note(f"n{n}", [])))
                   for n in range(MAX_WAITING_CHANGES + 50)]  # fmt: skip
        await asyncio.sleep(0.2)
        queued = database._writer._changes.qsize()
        release.set()
        await holder
        return queued, await asyncio.gather(*pending)

    queued, results = asyncio.run(flood())
    assert queued <= MAX_WAITING_CHANGES
    assert len(results) == MAX_WAITING_CHANGES + 50  # every one applied once there was room
    assert len(_subjects(database)) == MAX_WAITING_CHANGES + 50


def _history_row(transaction_id: str) -> dict[str, Any]:
    return {"transaction_id": transaction_id, "status": 1, "at": T0, "results": ""}


def _history_ids(database: Database) -> list[str]:
    query = select(transaction_history.c.transaction_id).order_by(transaction_history.c.id)
    return database.read_now(lambda c: list(c.execute(query).scalars()))


def test_rows_kept_for_the_commit_are_written_with_the_group_and_a_failing_change_takes_its_own(
    database: Database,
) -> None:
    statement, written = Direct(insert(transaction_history)), []

    def keeps(transaction_id: str, fails: bool = False) -> Callable[[Unit], str]:
        def work(unit: Unit) -> str:
            later = unit.insert(statement, _history_row(transaction_id))
            assert later.id is None  # kept for the group's flush
            unit.after_commit(lambda: written.append((transaction_id, later.id)))
            if fails:
                raise Refusal(Code.TRANSACTION_UNKNOWN, transaction_id)
            return transaction_id

        return work

    works = [keeps("T-1"), keeps("T-2", fails=True), keeps("T-3")]
    results = asyncio.run(_grouped(database, works))

    assert results[0::2] == ["T-1", "T-3"]
    assert _history_ids(database) == ["T-1", "T-3"]
    assert [transaction_id for transaction_id, _ in written] == ["T-1", "T-3"]
    assert all(row_id is not None for _, row_id in written)  # known once committed


def test_rows_flushed_in_a_savepoint_that_rolls_back_are_written_again(
    database: Database,
) -> None:
    statement = Direct(insert(transaction_history))
    with database.engine.begin() as connection:
        unit = Unit(connection, defer=True)
        first = unit.insert(statement, _history_row("T-1"))
        with contextlib.suppress(RuntimeError), unit.savepoint():
            unit.flush()  # T-1 written inside the savepoint, then rolled back with it
            unit.insert(statement, _history_row("T-2"))
            raise RuntimeError("the change fails")
        unit.flush()
    assert _history_ids(database) == ["T-1"]
    assert first.id is not None


@pytest.mark.postgres
def test_a_space_locked_in_a_rolled_back_savepoint_is_locked_again() -> None:
    with postgres_database() as url:
        database = Database(url)
        database.migrate()
        try:
            with database.engine.begin() as connection, database.engine.connect() as other:
                unit = Unit(connection)
                with contextlib.suppress(RuntimeError), unit.savepoint():
                    unit.lock_spaces(["GHA01"])
                    raise RuntimeError("the change fails")  # its lock goes with it
                assert _free(other, "GHA01")
                unit.lock_spaces(["GHA01"])
                unit.lock_spaces(["GHA01"])  # held until the commit: not asked again
                assert unit.locked == ["GHA01"]
                assert not _free(other, "GHA01")
        finally:
            database.close()


def _free(connection: Connection, space: str) -> bool:
    key = zlib.crc32(space.encode())
    with connection.begin():
        return bool(
            connection.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar()
        )


def test_a_rolled_back_savepoint_runs_the_undo_actions_noted_inside_it_latest_first(
    database: Database,
) -> None:
    """What a change keeps outside the database follows it back (``Unit.on_rewind``): the
    actions noted inside a savepoint that rolls back run, newest first; those before it, and
    those of a savepoint that was released, do not."""
    undone: list[str] = []
    with database.engine.begin() as connection:
        unit = Unit(connection)
        unit.on_rewind(lambda: undone.append("before"))
        with unit.savepoint():
            unit.on_rewind(lambda: undone.append("kept"))
        with contextlib.suppress(RuntimeError), unit.savepoint():
            unit.on_rewind(lambda: undone.append("first"))
            unit.on_rewind(lambda: undone.append("second"))
            raise RuntimeError("the change fails")
    assert undone == ["second", "first"]
