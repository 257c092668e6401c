"""Reconciliation of the mechanism registry's leg: what the adapter forwarded against what the
international registry took in from it. Pure: the caller reads both sides.

Three views are compared, each costing O(blocks log blocks):

- **intake**: every first transfer the adapter completed into the IR must be recorded there,
  as completed and applied, into the same account, with the same blocks as they arrive
  (ITMOs with the first transfer recorded); and the IR must record none the adapter did not
  forward (``missing``, ``unexpected``, ``differs``);
- **holdings**: every unit the IR holds of the mechanism registry's serials must have been
  forwarded with the attributes it is held with (``not-forwarded``): an extra block, a
  changed attribute or a stretched range shows up here even if the intake records agree;
- **totals**: units forwarded and units taken in, for the report.

Instructions sent to a Party registry are counted but not compared here: that leg is the
hub's reconciliation with the Party registry.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from article6.blocks import Block, subtract
from article6.model import UnitAttributes, UnitBlock, UnitKind, UnitState


@dataclass(frozen=True)
class Forward:
    """One first transfer as one side records it."""

    transaction_id: str
    acquiring_account: str
    blocks: tuple[UnitBlock, ...]  # as they arrive in the acquiring registry


@dataclass(frozen=True)
class Discrepancy:
    kind: str  # missing, unexpected, differs, not-forwarded
    reference: str  # a transaction id, or the account holding the units
    detail: str


@dataclass
class LegReport:
    forwarded_units: int = 0
    taken_in_units: int = 0
    compared_transactions: int = 0
    elsewhere: int = 0  # instructions to Party registries, not compared here
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.discrepancies


def _units(forward: Forward) -> int:
    return sum(block.unit_count for block in forward.blocks)


def _key(block: UnitBlock) -> tuple[int, int, UnitAttributes]:
    return block.serial_first, block.serial_last, block.attributes


def reconcile(
    forwarded: Sequence[Forward],
    taken_in: Sequence[Forward],
    held: Sequence[tuple[str, UnitBlock]],
    elsewhere: int = 0,
) -> LegReport:
    """Compare the adapter's completed forwards into the IR with the IR's intake and holdings."""
    report = LegReport(elsewhere=elsewhere)
    report.forwarded_units = sum(_units(f) for f in forwarded)
    report.taken_in_units = sum(_units(f) for f in taken_in)
    theirs = {f.transaction_id: f for f in taken_in}
    ours = {f.transaction_id: f for f in forwarded}
    for transaction_id in sorted(ours.keys() | theirs.keys()):
        report.compared_transactions += 1
        mine, other = ours.get(transaction_id), theirs.get(transaction_id)
        if other is None:
            report.discrepancies.append(
                Discrepancy("missing", transaction_id, "forwarded, but not taken in by the IR")
            )
        elif mine is None:
            report.discrepancies.append(
                Discrepancy("unexpected", transaction_id, "taken in, but never forwarded")
            )
        else:
            _compare(mine, other, report)
    _check_held(forwarded, held, report)
    return report


def _compare(mine: Forward, other: Forward, report: LegReport) -> None:
    if mine.acquiring_account != other.acquiring_account:
        detail = f"into {other.acquiring_account}, forwarded to {mine.acquiring_account}"
        report.discrepancies.append(Discrepancy("differs", mine.transaction_id, detail))
        return
    ours, theirs = sorted(map(_key, mine.blocks)), sorted(map(_key, other.blocks))
    if ours != theirs:
        first = next((a, b) for a, b in zip([*ours, None], [*theirs, None], strict=False)
                     if a != b)  # fmt: skip
        detail = f"forwarded {_describe(first[0])}, taken in {_describe(first[1])}"
        report.discrepancies.append(Discrepancy("differs", mine.transaction_id, detail))


def _describe(key: tuple[int, int, UnitAttributes] | None) -> str:
    if key is None:
        return "nothing more"
    first, last, unit = key
    return f"{first}-{last} ({unit.unit_kind.name} {unit.cooperative_approach} {unit.vintage})"


def _check_held(
    forwarded: Sequence[Forward], held: Sequence[tuple[str, UnitBlock]], report: LegReport
) -> None:
    """Every held unit was forwarded with the attributes it is held with (its state aside:
    the IR may have used or cancelled it since)."""
    sent = sorted(
        (block for forward in forwarded for block in forward.blocks), key=lambda b: b.serial_first
    )
    starts = [block.serial_first for block in sent]
    for account, block in held:
        unit = block.attributes.with_state(UnitState.HELD)
        start = max(bisect.bisect_right(starts, block.serial_first) - 1, 0)
        covering = [
            b for b in sent[start:bisect.bisect_right(starts, block.serial_last)]
            if b.serial_last >= block.serial_first and b.attributes == unit
        ]  # fmt: skip
        if subtract([Block(block.serial_first, block.serial_last, None)], covering):
            detail = (
                f"holds {block.serial_first}-{block.serial_last} ({unit.unit_kind.name} "
                f"{unit.cooperative_approach} {unit.vintage}), not forwarded as such"
            )
            report.discrepancies.append(Discrepancy("not-forwarded", account, detail))


def arrival(block: UnitBlock, first_transferring_party: str) -> UnitBlock:
    """A forwarded block as it arrives: an ITMO with its first-transferring Party."""
    unit = replace(
        block.attributes,
        unit_kind=UnitKind.ITMO,
        first_transferring_party=first_transferring_party,
        state=UnitState.HELD,
    )
    return Block(block.serial_first, block.serial_last, unit)
