"""Holdings maths: checking that units are held, and rebuilding blocks after a move.

Both the hub's ledger and every registry's holdings keep blocks in **canonical form**: within
one serial space, adjacent blocks with the same holder and attributes are always merged. Two
sides that agree on the units therefore agree block for block, which is what reconciliation
compares. Every function costs O(blocks touched), never O(units).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import TypeVar

from article6.blocks import Block, intersect, merge_adjacent, partition, take
from article6.codes import Code, Refusal
from article6.model import (
    Held,
    Holder,
    LedgerBlock,
    TransactionSpec,
    TransactionType,
    UnitBlock,
    UnitKind,
    UnitState,
)

B = TypeVar("B", bound=Hashable)


def check_held(wanted: Sequence[UnitBlock], ledger: Sequence[LedgerBlock], holder: Holder) -> None:
    """Refuse unless every wanted unit is held by ``holder`` with exactly the wanted attributes.

    ``ledger`` holds the blocks of one serial space that overlap the wanted ranges.
    """
    result = take(ledger, wanted)
    if not result.complete:
        gap = result.missing[0]
        raise Refusal(
            Code.UNITS_NOT_HELD, f"serials {gap.serial_first}-{gap.serial_last} are not held"
        )
    ordered = sorted(wanted, key=lambda block: block.serial_first)
    index = 0
    for piece in result.taken:
        while ordered[index].serial_last < piece.serial_first:
            index += 1
        _check_piece(piece, ordered[index], holder)


def _check_piece(piece: LedgerBlock, wanted: UnitBlock, holder: Holder) -> None:
    held = piece.attributes
    where = f"serials {piece.serial_first}-{piece.serial_last}"
    if held.holder != holder:
        raise Refusal(Code.UNITS_NOT_HELD, f"{where} are not held by {holder.account_id}")
    if held.unit.state is not UnitState.HELD:
        raise Refusal(Code.UNITS_NOT_HELD_STATE, f"{where} are {held.unit.state.name.lower()}")
    if held.unit != wanted.attributes:
        raise Refusal(Code.UNITS_NOT_HELD, f"{where} are held with other attributes")


def move(
    ledger: Sequence[LedgerBlock],
    wanted: Sequence[Block[B]],
    change: Callable[[Held], Held],
) -> list[LedgerBlock]:
    """The blocks replacing ``ledger`` once the wanted serials are changed by ``change``.

    ``ledger`` must include the neighbours touching the wanted ranges, so the result can be
    merged into canonical form.
    """
    inside, outside = partition(ledger, wanted)
    moved = [piece.with_attributes(change(piece.attributes)) for piece in inside]
    return merge_adjacent(outside + moved)


def add(ledger: Sequence[LedgerBlock], new: Sequence[LedgerBlock]) -> list[LedgerBlock]:
    """The blocks replacing ``ledger`` (the neighbours of ``new``) once ``new`` is added."""
    assert not intersect(ledger, new), "new blocks overlap held ones"
    return merge_adjacent([*ledger, *new])


def holding(block: UnitBlock, holder: Holder) -> LedgerBlock:
    return block.with_attributes(Held(holder, block.attributes))


def to(holder: Holder, state: UnitState | None = None) -> Callable[[Held], Held]:
    """A change that moves units to ``holder`` (and, if given, into ``state``)."""

    def change(held: Held) -> Held:
        unit = held.unit if state is None else held.unit.with_state(state)
        return Held(holder, unit)

    return change


def completion(spec: TransactionSpec) -> Callable[[Held], Held]:
    """What completing ``spec`` does to each unit it moves: the same for the hub's ledger and
    for every registry's holdings. Use and cancellation go to the named account (or stay in
    the transferring one) in their final state."""
    target = spec.target if spec.acquiring_account else spec.source
    # A first transfer by authorization, use or cancellation makes ITMOs on the way.
    party = spec.first_transferring_party
    itmo = {"unit_kind": UnitKind.ITMO, "first_transferring_party": party} if party else {}
    if spec.type is TransactionType.USE:
        return _rewrite(target, state=UnitState.USED, **itmo)
    if spec.type in {TransactionType.CANCELLATION, TransactionType.VOLUNTARY_CANCELLATION}:
        return _rewrite(target, state=UnitState.CANCELLED, **itmo)
    if spec.type is TransactionType.AUTHORIZATION:
        assert spec.authorization is not None
        granted = spec.authorization
        return _rewrite(
            target,
            cooperative_approach=granted.cooperative_approach,
            authorization_id=granted.authorization_id,
            purpose=granted.purpose,
            **itmo,
        )
    if spec.type is TransactionType.FIRST_TRANSFER:
        return _rewrite(target, **itmo)
    return to(target)


def _rewrite(holder: Holder, **attributes: object) -> Callable[[Held], Held]:
    """A change that moves units to ``holder`` with some attributes rewritten (an
    authorization binds outcomes to a cooperative approach; a first transfer makes ITMOs)."""

    def change(held: Held) -> Held:
        return Held(holder, replace(held.unit, **attributes))  # type: ignore[arg-type]

    return change
