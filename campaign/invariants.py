"""What must hold after any sequence of crashes: pure checks over what was read from the hub
and the registries (no I/O here, so each check is tested on its own)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FINAL = frozenset({4, 5, 6, 7})  # completed, terminated, rejected, cancelled
# DES: a registry terminates (5) its own proposal that the acquirer rejected (6); the acquirer
# keeps its own 6. Every other final status is recorded alike on both sides.
_AGREEING = {6: {5, 6}}
HELD, USED, CANCELLED = 1, 2, 3

# (account, space, first, last, state): one block as a side records it
Row = tuple[str, str, int, int, int]


@dataclass
class Findings:
    checked: int = 0
    failures: list[str] | None = None

    def check(self, holds: bool, failure: str) -> None:
        self.checked += 1
        if not holds:
            self.failures = [*(self.failures or []), failure]

    @property
    def ok(self) -> bool:
        return not self.failures


def units(rows: Iterable[Row], state: int | None = None) -> int:
    return sum(last - first + 1 for _, _, first, last, s in rows if state is None or s == state)


def overlaps(rows_by_registry: Mapping[str, list[Row]]) -> list[str]:
    """Serials recorded by two registries, or twice by one: O(blocks log blocks)."""
    spans = sorted(
        (space, first, last, registry)
        for registry, rows in rows_by_registry.items()
        for _, space, first, last, _ in rows
    )
    found = []
    for (space, _, last, owner), (next_space, first, _, other) in itertools.pairwise(spans):
        if space == next_space and first <= last:
            found.append(f"{space}:{first}-{last} recorded by {owner} and {other}")
    return found


def check_all(
    findings: Findings,
    issued: Mapping[str, tuple[int, int]],
    hub_rows: Mapping[str, list[Row]],
    local_rows: Mapping[str, list[Row]],
    hub_statuses: Mapping[str, int],
    local_statuses: Mapping[str, Mapping[str, int]],
) -> Findings:
    """Every invariant of the campaign over what was read once the network settled.

    ``issued``: each space's issued serial range; ``hub_rows``/``local_rows``: each registry's
    blocks as the hub's ledger and as the registry's own books have them; ``hub_statuses``:
    every transaction's status at the hub; ``local_statuses``: each registry's own."""
    pending = [tx for tx, status in hub_statuses.items() if status not in FINAL]
    findings.check(not pending, f"transactions not final at the hub: {pending[:5]}")
    for registry, statuses in local_statuses.items():
        open_ = [tx for tx, status in statuses.items() if status not in FINAL]
        findings.check(not open_, f"{registry}: transactions not final: {open_[:5]}")
        differ = [
            tx for tx, s in statuses.items()
            if tx in hub_statuses and s not in _AGREEING.get(hub_statuses[tx], {hub_statuses[tx]})
        ]  # fmt: skip
        findings.check(not differ, f"{registry}: final status differs from the hub's: {differ[:5]}")
        unknown = [tx for tx in statuses if tx not in hub_statuses]
        stranded = [tx for tx in unknown if statuses[tx] not in FINAL]
        findings.check(not stranded, f"{registry}: pending, unknown to the hub: {stranded[:5]}")
    total = sum(last - first + 1 for first, last in issued.values())
    hub_all = [row for rows in hub_rows.values() for row in rows]
    local_all = [row for rows in local_rows.values() for row in rows]
    findings.check(units(hub_all) == total, f"hub ledger has {units(hub_all)} units of {total}")
    findings.check(units(local_all) == total, f"registries have {units(local_all)} of {total}")
    gone = units(hub_all, USED) + units(hub_all, CANCELLED)
    held = units(local_all, HELD)
    findings.check(
        held == total - gone, f"conservation: held {held} != issued {total} - used/cancelled {gone}"
    )
    for name, rows in (("registries", local_rows), ("hub ledger", hub_rows)):
        twice = overlaps(rows)
        findings.check(not twice, f"{name}: serials in two places: {twice[:3]}")
    outside = [
        row for row in local_all
        if row[1] not in issued or not issued[row[1]][0] <= row[2] <= row[3] <= issued[row[1]][1]
    ]  # fmt: skip
    findings.check(not outside, f"serials that were never issued: {outside[:3]}")
    for registry in local_rows:
        same = sorted(hub_rows.get(registry, [])) == sorted(local_rows[registry])
        findings.check(same, f"{registry}: its books differ from the hub's ledger")
    return findings
