"""What the hub's messages read before they change anything, read once for a whole batch.

Asked message by message, a proposal reads whether its id was proposed before, whether either
of its registries is held by a reconciliation run (7002), and whether its serials are frozen
by an open discrepancy: three statements each, where a batch of them needs three in all. A
decision reads its transaction: one statement each, or one for a batch of decisions.

``Reads`` answers those questions from what it read before the batch's first message was
applied, so it must not answer anything an earlier message of the same batch changed:

- a transaction named by more than one message of the batch (a proposal, a notice, a
  decision) is read from the database each time, so the second sees what the first did;
- runs start and end only by the reconciler and operators, never by a message;
- serials are frozen only by comparing a leg confirmation: a batch that holds one asks the
  database for each proposal's serials, as a lone proposal would.

The ledger's blocks and locks around the serials of the batch's proposals and accepted
decisions are read ahead too (``LedgerReads``: two statements on PostgreSQL, under the serial
spaces' locks, taken first for the whole batch). Every change the batch makes to them goes
through it and is applied to what was read, so that what it holds stays what the tables
will hold; a message's read is answered from it only when it was read ahead for those very
ranges (it holds every block sharing a serial with them), and otherwise from the database.
The changes themselves are kept back and written together when the batch's change ends
(``_Writes``: a statement or two a table for the batch, not four a message), or before
anything reads those tables from the database.

It is read each time the writer runs the batch's change (again after a lost unique-key race),
and before any message is applied: when a refusal has the batch taken again, message by
message, after its first pass was undone, what it read is still the state before the batch.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Table

from article6 import sql
from article6.block_table import Neighbourhood, delete_rows, insert_rows, widen
from article6.blocks import Block
from article6.direct import pipelined
from article6.limits import MAX_BLOCKS_READ_AHEAD, MAX_SPACES_READ_AHEAD
from article6.model import Held, UnitBlock
from article6.unit import Unit
from article6.wire import stored_spec
from gateway.storage import ledger, schema
from gateway.storage.reconciliations import any_open_discrepancy, frozen, holding_registries
from gateway.storage.records import (
    TransactionRecord,
    change_statuses,
    get_transaction,
    get_transactions,
)

A = TypeVar("A")


@dataclass(frozen=True)
class Reads:
    connection: Connection
    records: Mapping[str, TransactionRecord]  # the recorded ones of ``ahead``
    ahead: frozenset[str]  # transaction ids read ahead, recorded or not
    holding: frozenset[str] | None  # registries held by a reconciliation run (proposals)
    any_frozen: bool  # False: no serial is frozen, no proposal need ask about its own
    ledger: LedgerReads

    @classmethod
    def of(
        cls,
        connection: Connection,
        named: Sequence[str],
        proposing: Sequence[str] = (),
        confirmations: bool = False,
    ) -> Reads:
        """Read ahead for a batch naming the transactions ``named`` (one entry a message),
        whose proposals name the registries ``proposing`` (none: it has no proposals), with or
        without leg ``confirmations``: one statement for the transactions, and two more when
        it has proposals."""
        counts = Counter(named)
        ahead = frozenset(i for i, n in counts.items() if n == 1)
        records = get_transactions(connection, sorted(ahead)) if ahead else {}
        alone = LedgerReads(connection)
        if not proposing:
            return cls(connection, records, ahead, None, True, alone)
        holding = holding_registries(connection, proposing)
        any_frozen = confirmations or any_open_discrepancy(connection)
        return cls(connection, records, ahead, holding, any_frozen, alone)

    @classmethod
    def alone(cls, connection: Connection) -> Reads:
        """Nothing read ahead: a message applied on its own asks the database each time."""
        return cls(connection, {}, frozenset(), None, True, LedgerReads(connection))

    def with_ledger(
        self, unit: Unit, proposed: Sequence[Sequence[UnitBlock]], accepted: Sequence[str]
    ) -> Reads:
        """These reads, with the ledger read ahead (``LedgerReads.ahead``) for the blocks of
        the batch's proposals and of the transactions it accepts (read ahead: ``record``)."""
        decided = [
            stored_spec(record.body).blocks
            for record in (self.records.get(i) for i in accepted if i in self.ahead)
            if record is not None and not record.status.final
        ]
        return replace(self, ledger=LedgerReads.ahead(unit, proposed, decided))

    def record(self, transaction_id: str) -> TransactionRecord | None:
        if transaction_id in self.ahead:
            return self.records.get(transaction_id)
        self.ledger.catch_up()  # an earlier message of the batch may have recorded it
        return get_transaction(self.connection, transaction_id)

    def reconciling(self, registries: Sequence[str]) -> str | None:
        """The first of ``registries`` (named by a proposal of the batch) whose run holds its
        proposals, if any."""
        assert self.holding is not None, "read ahead for proposals only"
        return next((registry for registry in registries if registry in self.holding), None)

    def frozen(self, space: str, ranges: Sequence[Block[Any]]) -> list[int]:
        """The open discrepancies sharing a serial with ``ranges`` of ``space``."""
        return frozen(self.connection, space, ranges) if self.any_frozen else []


class _Space(Generic[A]):
    """One serial space's blocks (disjoint), sorted by first serial."""

    def __init__(self, blocks: Iterable[Block[A]]) -> None:
        self.blocks = sorted(blocks, key=lambda block: block.serial_first)
        self.firsts = [block.serial_first for block in self.blocks]
        self.lasts = [block.serial_last for block in self.blocks]  # sorted too: disjoint

    def meeting(self, first: int, last: int) -> list[Block[A]]:
        """The blocks sharing a serial with ``first..last``: two bisections."""
        start = bisect_left(self.lasts, first)
        return self.blocks[start : bisect_right(self.firsts, last, lo=start)]

    def remove(self, first: int) -> None:
        """Remove the block starting at ``first``, if it is here."""
        index = bisect_left(self.firsts, first)
        if index < len(self.firsts) and self.firsts[index] == first:
            del self.blocks[index], self.firsts[index], self.lasts[index]

    def add(self, block: Block[A]) -> None:
        index = bisect_left(self.firsts, block.serial_first)
        self.blocks.insert(index, block)
        self.firsts.insert(index, block.serial_first)
        self.lasts.insert(index, block.serial_last)


@dataclass
class _Ahead(Generic[A]):
    """One table's blocks (ledger blocks, or locks) read ahead around some ranges, kept as
    the batch changes them: every block of the table that shares a serial with a range read
    ahead is here, as it is in the table now."""

    margin: int  # the serials either side of a range that a read of it asks for
    covered: dict[str, set[tuple[int, int]]]  # the (widened) ranges read ahead, by space
    spaces: dict[str, _Space[A]]

    @classmethod
    def read(
        cls,
        found: Callable[[Mapping[str, Sequence[tuple[int, int]]]], dict[str, list[Block[A]]]],
        wanted: Mapping[str, Sequence[Block[Any]]],
        margin: int,
    ) -> _Ahead[A]:
        """``found``: the table's blocks sharing a serial with some ranges, by space."""
        widened = {space: widen(ranges, margin) for space, ranges in wanted.items()}
        covered = {space: set(spans) for space, spans in widened.items()}
        spaces = {space: _Space(blocks) for space, blocks in found(widened).items()}
        return cls(margin, covered, spaces)

    def find(self, space: str, ranges: Sequence[Block[Any]]) -> list[Block[A]] | None:
        """The blocks a read of ``ranges`` finds now; None unless read ahead for them."""
        widened = widen(ranges, self.margin)
        if not self.covered.get(space, set()).issuperset(widened):
            return None
        found: dict[int, Block[A]] = {}
        for span in widened:
            found.update((block.serial_first, block) for block in self.spaces[space].meeting(*span))
        return list(found.values())

    def replaced(self, space: str, old: Iterable[Block[A]], new: Iterable[Block[A]]) -> None:
        """The table's ``old`` blocks of ``space`` are now ``new``."""
        held = self.spaces.setdefault(space, _Space(()))
        for block in old:
            held.remove(block.serial_first)
        for block in new:
            held.add(block)


@dataclass(frozen=True)
class _Replaced:
    space: str
    firsts: list[int]  # the stored first serials of the rows replaced
    rows: list[dict[str, Any]]  # the rows replacing them


@dataclass(frozen=True)
class _Locked:
    transaction_id: str
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class _Unlocked:
    transaction_id: str


@dataclass(frozen=True)
class _Recorded:
    row: dict[str, Any]  # a new transaction's


@dataclass(frozen=True)
class _StatusChanged:
    change: dict[str, Any]  # records.set_status's


_Change = _Replaced | _Locked | _Unlocked | _Recorded | _StatusChanged


class _Writes:
    """A batch's new transactions, their status changes, and its changes to the ledger's
    blocks and the locks, kept back and made together when its change ends
    (``Unit.write_behind``): a statement or two per table for the whole batch, where each
    transfer took six. They are made earlier when the batch reads one of those tables from
    the database (``Unit.catch_up``), so it reads what it wrote. A change to the ledger is
    netted against the later ones: a block written and replaced within the batch (a run of
    neighbouring transfers, each rewriting the block the last one wrote) is never written.

    What is kept follows a savepoint's rollback: a change kept inside it is forgotten, and
    changes written inside it are kept again (the rollback undid them in the database)."""

    def __init__(
        self, unit: Unit, transactions: Table, ledger_table: Table, lock_table: Table
    ) -> None:
        self._unit = unit
        self._transactions = transactions
        self._ledger = ledger_table
        self._locks = lock_table
        self._kept: list[_Change] = []
        unit.write_behind(self.write)

    def keep(self, change: _Change) -> None:
        self._unit.on_rewind(partial(self._forget, len(self._kept)))
        self._kept.append(change)

    def write(self) -> None:
        kept, self._kept = self._kept, []
        if not kept:
            return
        self._unit.on_rewind(partial(self._restore, kept))
        net, connection = _Net.of(kept), self._unit.connection
        insert_rows(connection, self._transactions, net.recorded)  # first: a race raises here
        if net.statuses:  # then statuses: another hub's change raises here (WriteConflict)
            change_statuses(connection, net.statuses)
        for space, firsts in net.deleted.items():
            delete_rows(connection, self._ledger, space, sorted(firsts))
        insert_rows(connection, self._ledger, list(net.inserted.values()))
        sql.unlock_all(connection, self._locks, sorted(net.unlocked))
        sql.add_lock_rows(
            connection, self._locks, [r for rows in net.locked.values() for r in rows]
        )

    def _forget(self, count: int) -> None:
        del self._kept[count:]

    def _restore(self, kept: list[_Change]) -> None:
        self._kept = kept


@dataclass
class _Net:
    """What some changes come to: the new transactions, then the status changes, in order;
    the ledger rows to delete (stored first serials by space), then those to insert; the
    transactions whose locks to delete, then the locks to insert."""

    recorded: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    deleted: dict[str, set[int]] = field(default_factory=dict)
    inserted: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    unlocked: set[str] = field(default_factory=set)
    locked: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def of(cls, kept: Sequence[_Change]) -> _Net:
        """``kept``, in order. A row inserted by one change and deleted by a later one is
        neither (no key is inserted while a row holds it: the tables' unique indexes)."""
        net = cls()
        for change in kept:
            if isinstance(change, _Replaced):
                gone = net.deleted.setdefault(change.space, set())
                for first in change.firsts:
                    if net.inserted.pop((change.space, first), None) is None:
                        gone.add(first)
                rows = change.rows
                net.inserted.update(((change.space, row["serial_first"]), row) for row in rows)
            elif isinstance(change, _Recorded):
                net.recorded.append(change.row)
            elif isinstance(change, _StatusChanged):
                net.statuses.append(change.change)
            elif isinstance(change, _Locked):
                net.locked.setdefault(change.transaction_id, []).extend(change.rows)
            else:  # every lock of the transaction: those in the table too, if any
                net.locked.pop(change.transaction_id, None)
                net.unlocked.add(change.transaction_id)
        return net


class LedgerReads:
    """The ledger's blocks and the transactions' locks as a batch's messages read and change
    them: read ahead once for the batch (``ahead``), or from the database each time.

    What was read ahead follows the tables through the batch's changes, and back again when
    a savepoint is rolled back (``Unit.on_rewind``): a message that raises, or a batch's first
    pass undone to be taken again message by message (``article6.inbox``)."""

    def __init__(
        self,
        connection: Connection,
        blocks: _Ahead[Held] | None = None,
        locks: _Ahead[str] | None = None,
        unit: Unit | None = None,
    ) -> None:
        assert unit is not None or (blocks is None and locks is None), "rewound with a unit"
        self.connection = connection
        self._blocks = blocks
        self._locks = locks
        self._unit = unit
        # Read ahead, the batch's writes wait for its end; alone, a message writes at once.
        self._writes = (
            _Writes(unit, schema.transactions, schema.ledger_blocks, schema.locks) if unit else None
        )

    @classmethod
    def ahead(
        cls,
        unit: Unit,
        proposed: Sequence[Sequence[UnitBlock]],
        decided: Sequence[Sequence[UnitBlock]],
    ) -> LedgerReads:
        """Read ahead, under the locks of their serial spaces (taken now, in order, for the
        whole batch), the ledger around the blocks of each proposal and decision and the
        locks on each proposal's; a message of more than MAX_BLOCKS_READ_AHEAD blocks reads
        its own. Nothing is read for a batch without such blocks, nor for one naming more
        than MAX_SPACES_READ_AHEAD spaces (a space lock is a statement each: its messages
        lock and read their own, as alone)."""
        proposed = [b for b in proposed if len(b) <= MAX_BLOCKS_READ_AHEAD]
        decided = [b for b in decided if len(b) <= MAX_BLOCKS_READ_AHEAD]
        around, locking = _by_space([*proposed, *decided]), _by_space(proposed)
        if not around or len(around) > MAX_SPACES_READ_AHEAD:
            return cls(unit.connection)
        unit.lock_spaces(around)
        connection = unit.connection
        blocks = _Ahead.read(partial(ledger.blocks_around, connection), around, margin=1)
        locks = _Ahead.read(partial(ledger.locks_around, connection), locking, margin=0)
        return cls(connection, blocks, locks, unit)

    def neighbourhood(self, space: str, wanted: Sequence[Block[Any]]) -> Neighbourhood[Held]:
        """The ledger blocks of ``space`` overlapping or touching ``wanted``."""
        found = self._blocks.find(space, wanted) if self._blocks else None
        if found is None:
            self.catch_up()
            return ledger.neighbourhood(self.connection, space, wanted)
        return ledger.neighbourhood_of(space, found)

    def lockers(self, space: str, wanted: Sequence[Block[Any]]) -> list[str]:
        """The transactions holding locks on any serial of ``wanted``, sorted."""
        found = self._locks.find(space, wanted) if self._locks else None
        if found is None:
            self.catch_up()
            return ledger.lock_overlaps(self.connection, space, wanted)
        return sorted({block.attributes for block in found})

    def insert_transaction(self, row: dict[str, Any]) -> None:
        """Insert a new transaction's row (``records.insert_transaction``). Kept back with the
        batch's other writes: the batch reads a transaction it names once from what was read
        ahead, and one it names again from the table (``Reads.record``), after catching up."""
        if self._writes is None:
            insert_rows(self.connection, schema.transactions, [row])
        else:
            self._writes.keep(_Recorded(row))

    def change_status(self, change: dict[str, Any]) -> None:
        """Change a transaction's status (``records.set_status``), kept back as its insert
        is: a transaction the batch names again is read after catching up."""
        if self._writes is None:
            change_statuses(self.connection, [change])
        else:
            self._writes.keep(_StatusChanged(change))

    def replace(self, neighbourhood: Neighbourhood[Held], blocks: Sequence[Block[Held]]) -> None:
        """Replace a neighbourhood's blocks with ``blocks`` (the same serials, rearranged)."""
        if self._writes is None:
            neighbourhood.replace(self.connection, blocks)
        else:
            firsts, rows = neighbourhood.firsts(), neighbourhood.rows(blocks)
            self._writes.keep(_Replaced(neighbourhood.space, firsts, rows))
        self._replaced(self._blocks, neighbourhood.space, neighbourhood.blocks, blocks)

    def lock(self, transaction_id: str, blocks: Sequence[UnitBlock]) -> None:
        if self._writes is None:
            ledger.add_locks(self.connection, transaction_id, blocks)
        else:
            self._writes.keep(_Locked(transaction_id, sql.lock_rows(transaction_id, blocks)))
        for space, in_space in _by_space([blocks]).items():
            locked = [block.with_attributes(transaction_id) for block in in_space]
            self._replaced(self._locks, space, (), locked)

    def unlock(self, transaction_id: str, blocks: Sequence[UnitBlock]) -> None:
        """Release a transaction's locks: those on its ``blocks``."""
        if self._writes is None:
            ledger.release_locks(self.connection, transaction_id)
        else:
            self._writes.keep(_Unlocked(transaction_id))
        for space, in_space in _by_space([blocks]).items():
            locked = [block.with_attributes(transaction_id) for block in in_space]
            self._replaced(self._locks, space, locked, ())

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around a change's writes to the ledger and the locks. Alone, they go to PostgreSQL
        in one round trip (``pipelined``); kept back for the batch, nothing is sent here, and
        a pipeline with nothing in it would still cost a round trip (its sync)."""
        if self._writes is not None:
            yield
            return
        with pipelined(self.connection):
            yield

    def catch_up(self) -> None:
        """Before reading the tables: the batch's writes kept back until now."""
        if self._unit is not None:
            self._unit.catch_up()

    def _replaced(
        self,
        ahead: _Ahead[A] | None,
        space: str,
        old: Sequence[Block[A]],
        new: Sequence[Block[A]],
    ) -> None:
        """The table's ``old`` blocks are now ``new``: so too in what was read ahead, until a
        savepoint rolls the change back."""
        if ahead is None:
            return
        assert self._unit is not None
        ahead.replaced(space, old, new)
        self._unit.on_rewind(partial(ahead.replaced, space, new, old))


def _by_space(block_lists: Sequence[Sequence[UnitBlock]]) -> dict[str, list[UnitBlock]]:
    grouped: dict[str, list[UnitBlock]] = {}
    for blocks in block_lists:
        for block in blocks:
            grouped.setdefault(block.attributes.originating_registry, []).append(block)
    return grouped
