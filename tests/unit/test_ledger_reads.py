"""The blocks a hub batch reads ahead (gateway.reads): found by bisection, and kept as the
batch changes them, they answer as a read of the table would."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, create_engine, select

from article6.blocks import Block
from article6.limits import MAX_BLOCKS_READ_AHEAD, MAX_SPACES_READ_AHEAD
from article6.model import UnitBlock
from article6.unit import Unit
from article6.wire import unit_block
from gateway.reads import (
    LedgerReads,
    _Ahead,
    _Change,
    _Locked,
    _Net,
    _Recorded,
    _Replaced,
    _Space,
    _StatusChanged,
    _Unlocked,
    _Writes,
)
from gateway.storage import schema
from tests.builders import block as wire_block


@st.composite
def disjoint(draw: st.DrawFn) -> list[Block[int]]:
    """Disjoint blocks in random order, each carrying its index."""
    cuts = sorted(draw(st.sets(st.integers(0, 200), max_size=30)))
    spans = [(cuts[i], cuts[i + 1] - 1) for i in range(0, len(cuts) - 1, 2)]
    blocks = [Block(first, last, n) for n, (first, last) in enumerate(spans)]
    return draw(st.permutations(blocks))


def _naive(blocks: list[Block[int]], first: int, last: int) -> list[Block[int]]:
    return sorted((b for b in blocks if b.serial_first <= last and b.serial_last >= first),
                  key=lambda b: b.serial_first)  # fmt: skip


@given(disjoint(), st.integers(0, 210), st.integers(0, 30))
def test_the_blocks_meeting_a_range_are_those_sharing_a_serial_with_it(
    blocks: list[Block[int]], first: int, length: int
) -> None:
    assert _Space(blocks).meeting(first, first + length) == _naive(blocks, first, first + length)


@given(disjoint(), st.data())
def test_removing_and_adding_blocks_keeps_the_answers_a_read_would_give(
    blocks: list[Block[int]], data: st.DataObject
) -> None:
    space = _Space(blocks)
    removed = data.draw(st.lists(st.sampled_from(blocks), unique=True) if blocks else st.just([]))
    kept = [b for b in blocks if b not in removed]
    for block in removed:
        space.remove(block.serial_first)
    space.remove(500)  # not there: nothing changes
    for block in removed[::2]:  # put back, as a change that rearranges serials would
        space.add(block)
    kept += removed[::2]
    for first in range(0, 210, 7):
        assert space.meeting(first, first + 9) == _naive(kept, first, first + 9)


def test_only_ranges_read_ahead_are_answered_and_changes_are_seen() -> None:
    """A range not read ahead (or wider than one that was) is not answered; a replaced
    block is answered as replaced."""
    read: list[dict[str, list[tuple[int, int]]]] = []

    def found(widened: Mapping[str, Sequence[tuple[int, int]]]) -> dict[str, list[Block[str]]]:
        read.append({space: list(spans) for space, spans in widened.items()})
        return {"GHA01": [Block(1, 100, "old")]}

    ahead = _Ahead.read(found, {"GHA01": [Block(10, 10, None)]}, margin=1)
    assert read == [{"GHA01": [(9, 11)]}]
    assert ahead.find("GHA01", [Block(10, 10, None)]) == [Block(1, 100, "old")]
    assert ahead.find("GHA01", [Block(10, 11, None)]) is None
    assert ahead.find("CHE01", [Block(10, 10, None)]) is None
    new = [Block(1, 9, "old"), Block(10, 10, "new"), Block(11, 100, "old")]
    ahead.replaced("GHA01", [Block(1, 100, "old")], new)
    assert ahead.find("GHA01", [Block(10, 10, None)]) == new


class _Unit:
    """What ``LedgerReads.ahead`` uses of a unit of work, noting the spaces it locks."""

    def __init__(self) -> None:
        self.connection = None
        self.locked: list[list[str]] = []

    def lock_spaces(self, spaces: Iterable[str]) -> None:
        self.locked.append(sorted(spaces))


def block(first: int, last: int, space: str = "GHA01") -> UnitBlock:
    return unit_block(wire_block(first, last, space))


def test_a_batch_naming_too_many_spaces_locks_and_reads_nothing_ahead() -> None:
    """Its messages then lock and read their own spaces, as a message alone does."""
    many = [[block(1, 1, space=f"X{n:04}")] for n in range(MAX_SPACES_READ_AHEAD + 1)]
    wide = [[block(1, 1)] * (MAX_BLOCKS_READ_AHEAD + 1)]
    for proposed in (many, wide, []):
        unit = _Unit()
        reads = LedgerReads.ahead(cast(Unit, unit), proposed, [])
        assert unit.locked == []
        assert (reads._blocks, reads._locks) == (None, None)


Rows = dict[tuple[str, int], int]  # a ledger: (space, stored first serial) -> a value
Locks = set[tuple[str, int]]  # (transaction id, stored first serial)


@st.composite
def changes(draw: st.DrawFn) -> tuple[Rows, Locks, list[_Change]]:
    """A ledger and locks, and changes to them as a batch makes them: a replacement deletes
    rows that are there and inserts keys that are not; a lock or an unlock names any
    transaction, with locks or not; a new transaction is recorded; a transaction's status
    changes."""
    keys = st.tuples(st.sampled_from("AB"), st.integers(0, 12))
    ledger = draw(st.dictionaries(keys, st.integers(0, 9), max_size=8))
    held = draw(st.sets(st.tuples(st.integers(0, 3), st.integers(0, 9))))
    locks = {(f"T{n}", first) for n, first in held}
    state, count = dict(ledger), 4
    made: list[_Change] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["replace", "lock", "unlock", "record", "status"]))
        if kind == "replace":
            space = draw(st.sampled_from("AB"))
            there = sorted(first for s, first in state if s == space)
            gone = draw(st.lists(st.sampled_from(there), unique=True)) if there else []
            for first in gone:
                del state[space, first]
            free = [first for first in range(13) if (space, first) not in state]
            new = draw(st.lists(st.sampled_from(free), unique=True, max_size=3))
            rows = [{"serial_first": first, "value": draw(st.integers(0, 9))} for first in new]
            state.update(((space, row["serial_first"]), row["value"]) for row in rows)
            made.append(_Replaced(space, gone, rows))
        elif kind == "lock":
            firsts = draw(st.lists(st.integers(0, 9), unique=True, min_size=1, max_size=3))
            locker = draw(st.integers(0, count))  # a new transaction, or one with locks
            made.append(_Locked(f"T{locker}", [{"serial_first": f} for f in firsts]))
            count += locker == count
        elif kind == "unlock":
            made.append(_Unlocked(f"T{draw(st.integers(0, count))}"))
        elif kind == "record":
            made.append(_Recorded({"transaction_id": f"R{len(made)}"}))
        else:
            made.append(_StatusChanged({"id": f"R{draw(st.integers(0, len(made)))}"}))
    return ledger, locks, made


def _one_by_one(
    ledger: Rows, locks: Locks, made: list[_Change]
) -> tuple[Rows, Locks, list[dict[str, Any]], list[dict[str, Any]]]:
    ledger, locks = dict(ledger), set(locks)
    recorded: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    for change in made:
        if isinstance(change, _Replaced):
            for first in change.firsts:
                del ledger[change.space, first]
            for row in change.rows:
                assert (change.space, row["serial_first"]) not in ledger
                ledger[change.space, row["serial_first"]] = row["value"]
        elif isinstance(change, _Locked):
            locks |= {(change.transaction_id, row["serial_first"]) for row in change.rows}
        elif isinstance(change, _Unlocked):
            locks = {lock for lock in locks if lock[0] != change.transaction_id}
        elif isinstance(change, _Recorded):
            recorded.append(change.row)
        else:
            statuses.append(change.change)
    return ledger, locks, recorded, statuses


@given(changes())
def test_a_batchs_changes_netted_leave_the_tables_as_made_one_by_one(
    case: tuple[Rows, Locks, list[_Change]],
) -> None:
    """Deleting the net's rows and then inserting its rows (each key not there), then the
    same for the locks, ends where making each change in turn ends; every new transaction
    is recorded, and every status changed, in order (all the new transactions first: a
    status change is made after its transaction's insert either way)."""
    ledger, locks, made = case
    net = _Net.of(made)
    after = {key: value for key, value in ledger.items()
             if key[1] not in net.deleted.get(key[0], set())}  # fmt: skip
    for (space, first), row in net.inserted.items():
        assert (space, first) not in after
        after[space, first] = row["value"]
    locked = {lock for lock in locks if lock[0] not in net.unlocked}
    locked |= {(i, row["serial_first"]) for i, rows in net.locked.items() for row in rows}
    assert (after, locked, net.recorded, net.statuses) == _one_by_one(ledger, locks, made)


def _locked(connection: Connection) -> list[str]:
    rows = connection.execute(select(schema.locks.c.transaction_id))
    return sorted(row.transaction_id for row in rows)


def _lock(transaction_id: str, first: int) -> _Locked:
    row = {"transaction_id": transaction_id, "space": "GHA01", "serial_first": first,
           "serial_last": first}  # fmt: skip
    return _Locked(transaction_id, [row])


def test_writes_kept_back_follow_a_savepoints_rollback() -> None:
    """A change kept inside a savepoint that rolls back is forgotten; changes written inside
    one are kept again, the rollback having undone them in the table."""
    engine = create_engine("sqlite://")
    schema.metadata.create_all(engine)
    with engine.begin() as connection:
        unit = Unit(connection)
        writes = _Writes(unit, schema.transactions, schema.ledger_blocks, schema.locks)
        writes.keep(_lock("T1", 1))
        with contextlib.suppress(RuntimeError), unit.savepoint():
            writes.keep(_lock("T2", 2))
            unit.catch_up()
            assert _locked(connection) == ["T1", "T2"]
            writes.keep(_lock("T3", 3))
            raise RuntimeError
        assert _locked(connection) == []
        unit.catch_up()
        assert _locked(connection) == ["T1"]
        unit.catch_up()  # nothing kept: nothing written twice
        assert _locked(connection) == ["T1"]
