"""Leg confirmations: after a transaction completes, each registry involved reports its
resulting blocks over the transaction's serials (``LegConfirmation`` through
``Hub.SubmitReconciliation``), and the hub compares them with its ledger at once.

Both sides are cut to the transaction's serial ranges and compared block for block (both are
canonical). A later transaction over the same serials involving the registry, completed or
still pending, makes the confirmation *superseded*: the books have moved on, so it is not
compared (the periodic run still covers those serials). Otherwise each block only one side
has is a discrepancy of that transaction, and its serials are frozen.

A registry confirms only its own side. A reported block over serials that the ledger holds in
another registry (units that left it, say) is refused with 7007 and freezes nothing:
otherwise a former holder could freeze someone else's units, again after every resolution.
A registry whose books really kept units that left is found by its own reconciliation run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, or_, select

from article6.block_table import overlapping_blocks
from article6.blocks import Block, find_overlaps, intersect, merge_adjacent, serial_range
from article6.codes import Code, Refusal
from article6.limits import LEG_LATER_TRANSACTIONS, MAX_CONFIRMED_BLOCKS
from article6.model import LedgerBlock, Status, UnitBlock
from article6.reconciliation import block_differences
from article6.unit import Unit
from article6.v1 import reconciliation_pb2, transaction_pb2
from article6.wire import held_block, stored_spec
from gateway.lifecycle import Outcome
from gateway.storage import ledger
from gateway.storage import reconciliations as runs
from gateway.storage.records import TransactionRecord, get_transactions
from gateway.storage.schema import transactions


@dataclass(frozen=True)
class ReadAhead:
    """What a run of confirmations needs read, read once for all of them: their transactions,
    and the ledger over all their serials (a few statements for a batch of receipts, not two
    a confirmation). Nothing a confirmation writes changes either."""

    records: dict[str, TransactionRecord]
    ranges: dict[str, dict[str, list[Block[None]]]]  # by transaction, then serial space
    held: dict[str, list[LedgerBlock]]  # by serial space

    @classmethod
    def read(cls, unit: Unit, transaction_ids: Sequence[str]) -> ReadAhead:
        """Read for a run of confirmations, after the writes its batch kept back (a completion
        earlier in it: ``Unit.catch_up``), so it compares the ledger as it is now."""
        unit.catch_up()
        connection = unit.connection
        records = get_transactions(connection, transaction_ids)
        ranges = {  # only a completed transaction is compared, and its body was checked
            i: _ranges(record) for i, record in records.items() if record.status is Status.COMPLETED
        }
        wanted: dict[str, list[Block[None]]] = {}
        for by_space in ranges.values():
            for space, found in by_space.items():
                wanted.setdefault(space, []).extend(found)
        held = {
            space: ledger.neighbourhood(connection, space, found).blocks
            for space, found in wanted.items()
        }
        return cls(records, ranges, held)


def confirm(
    unit: Unit,
    sender: str,
    confirmation: reconciliation_pb2.LegConfirmation,
    now: datetime,
    read: ReadAhead | None = None,
) -> Outcome:
    """Compare a registry's confirmation of its side of a completed transaction with the
    ledger (``read``: read ahead for a batch of them, else read here for this one)."""
    transaction_id = confirmation.transaction_id
    if read is None:
        read = ReadAhead.read(unit, [transaction_id])
    record = read.records.get(transaction_id)
    involved = record is not None and sender in {
        record.transferring_registry, record.acquiring_registry,
    }  # fmt: skip
    if record is None or not involved:
        return Outcome(transaction_id, None, [(Code.TRANSACTION_UNKNOWN, transaction_id)])
    if record.status is not Status.COMPLETED:
        detail = f"{transaction_id} is {record.status.name.lower()}, not completed"
        return Outcome(transaction_id, record.status, [(Code.STATUS_TRANSITION_INVALID, detail)])
    if len(confirmation.blocks) > MAX_CONFIRMED_BLOCKS:
        raise Refusal(Code.TOO_MANY_BLOCKS, f"{len(confirmation.blocks)} blocks")
    reported = [held_block(message) for message in confirmation.blocks]
    ranges = read.ranges[transaction_id]
    refused = _malformed(reported, sender)
    compared = None
    if refused is None:
        compared = _compare(sender, reported, ranges, _held(ranges, read))
    if isinstance(compared, tuple):
        refused = compared
    if refused is not None:
        return Outcome(transaction_id, record.status, [refused])
    assert isinstance(compared, Differences)
    hub_only, registry_only = compared.hub_only, compared.registry_only
    # Agreement needs no more; only a difference asks whether the books have moved on since,
    # which reads the registry's later transactions (seconds after a hub's restart, many).
    if (not hub_only and not registry_only) or _superseded(unit.connection, record, sender, ranges):
        return Outcome(transaction_id, record.status)
    runs.add_discrepancies(unit, sender, "hub", hub_only, now, None, transaction_id)
    runs.add_discrepancies(unit, sender, "registry", registry_only, now, None, transaction_id)
    count = len(hub_only) + len(registry_only)
    detail = f"{count} blocks differ from the hub's ledger; their serials are frozen"
    return Outcome(transaction_id, record.status, [(Code.LEG_CONFIRMATION_MISMATCH, detail)])


@dataclass(frozen=True)
class Differences:
    hub_only: list[LedgerBlock]
    registry_only: list[LedgerBlock]


def _malformed(reported: Sequence[LedgerBlock], sender: str) -> tuple[Code, str] | None:
    """Blocks of another registry, or two blocks sharing serials (books can't hold that)."""
    if any(block.attributes.holder.registry != sender for block in reported):
        return (
            Code.REGISTRY_NOT_PARTY_TO_UNITS,
            "a leg confirmation reports the sender's own blocks only",
        )
    overlap = _overlap(reported)
    return None if overlap is None else (Code.BLOCKS_OVERLAP, overlap)


def _held(ranges: dict[str, list[Block[None]]], read: ReadAhead) -> dict[str, list[LedgerBlock]]:
    """The ledger blocks over ``ranges`` by space, of those read ahead (a superset: the
    ledger around every transaction of the run)."""
    return {
        space: overlapping_blocks(read.held.get(space, []), wanted)
        for space, wanted in ranges.items()
    }


def _compare(
    sender: str,
    reported: Sequence[LedgerBlock],
    ranges: dict[str, list[Block[None]]],
    held_by_space: dict[str, list[LedgerBlock]],
) -> Differences | tuple[Code, str]:
    """The sender's side of the ledger against what it reported, over the transaction's
    serials; or the refusal of a report over serials the ledger holds elsewhere (7007)."""
    found = Differences([], [])
    for space, wanted in ranges.items():
        held = held_by_space[space]
        theirs = [b for b in reported if b.attributes.unit.originating_registry == space]
        mine = _cut([block for block in held if block.attributes.holder.registry == sender], wanted)
        cut = _cut(theirs, wanted)
        if cut == mine:  # the usual answer; ledger blocks are disjoint, so none is elsewhere
            continue
        claimed = _claimed_elsewhere(held, theirs, sender, wanted)
        if claimed is not None:
            return Code.LEG_CONFIRMATION_NOT_OWN, claimed
        only_mine, only_theirs = block_differences(mine, cut)
        found.hub_only.extend(only_mine)
        found.registry_only.extend(only_theirs)
    return found


def _claimed_elsewhere(
    held: Sequence[LedgerBlock],
    reported: Sequence[LedgerBlock],
    sender: str,
    wanted: Sequence[Block[None]],
) -> str | None:
    """The first reported serials (inside the transaction's ranges) that the ledger holds in
    another registry than the sender, or None."""
    others = [block for block in held if block.attributes.holder.registry != sender]
    for a, b in find_overlaps([*_cut(others, wanted), *_cut(reported, wanted)]):
        holder = (a if a.attributes.holder.registry != sender else b).attributes.holder.registry
        first, last = max(a.serial_first, b.serial_first), min(a.serial_last, b.serial_last)
        return f"serials {first}-{last} are held in {holder}, not {sender}"
    return None


def _overlap(reported: Sequence[LedgerBlock]) -> str | None:
    """Two reported blocks sharing serials (books can't hold that), or None."""
    for space in sorted({block.attributes.unit.originating_registry for block in reported}):
        found = find_overlaps(
            block for block in reported if block.attributes.unit.originating_registry == space
        )
        if found:
            (a, b) = found[0]
            return f"{space}: {a.serial_first}-{a.serial_last} and {b.serial_first}-{b.serial_last}"
    return None


def _cut(blocks: Sequence[LedgerBlock], ranges: Sequence[Block[None]]) -> list[LedgerBlock]:
    """The blocks' parts inside ``ranges``, merged as canonical form merges them."""
    return merge_adjacent(intersect(sorted(blocks, key=lambda b: b.serial_first), ranges))


def _ranges(record: TransactionRecord) -> dict[str, list[Block[None]]]:
    """The transaction's serial ranges by serial space, read from its recorded message's
    own fields: the body was checked when it was recorded, so it is not made a spec again."""
    found: dict[str, list[Block[None]]] = {}
    for block in transaction_pb2.Transaction.FromString(record.body).blocks:
        space = block.originating_registry
        found.setdefault(space, []).append(serial_range(block.serial_first, block.serial_last))
    return found


def _superseded(
    connection: Connection,
    record: TransactionRecord,
    sender: str,
    ranges: dict[str, list[Block[None]]],
) -> bool:
    """Whether another transaction involving ``sender`` over these serials completed after
    this one or is still pending: then the books have moved on since. So have they, for this
    purpose, when more than ``LEG_LATER_TRANSACTIONS`` of its transactions completed since
    (a confirmation that late is not worth reading them all: the next run compares)."""
    for space, wanted in ranges.items():
        lockers = ledger.lock_overlaps(connection, space, wanted)
        if any(locker != record.transaction_id for locker in lockers):
            return True
    rows = connection.execute(
        select(transactions.c.transaction_id, transactions.c.body)
        .where(
            or_(
                transactions.c.transferring_registry == sender,
                transactions.c.acquiring_registry == sender,
            ),
            transactions.c.status == Status.COMPLETED.value,
            transactions.c.status_at > record.status_at,
        )
        .limit(LEG_LATER_TRANSACTIONS + 1)
    ).all()
    if len(rows) > LEG_LATER_TRANSACTIONS:
        return True
    for row in rows:
        later = stored_spec(row.body)
        if any(_overlaps(block, ranges) for block in later.blocks):
            return True
    return False


def _overlaps(block: UnitBlock, ranges: dict[str, list[Block[None]]]) -> bool:
    return any(
        r.serial_first <= block.serial_last and block.serial_first <= r.serial_last
        for r in ranges.get(block.attributes.originating_registry, ())
    )
