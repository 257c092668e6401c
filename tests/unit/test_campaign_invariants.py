"""The crash campaign's invariant checks catch each kind of damage they exist for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from campaign.invariants import CANCELLED, HELD, Findings, Row, check_all

ISSUED = {"GHA01": (1, 100), "CHE01": (1, 50)}


def world() -> dict[str, Any]:
    """A consistent network: GHA01 moved 1-10 to CHE01 and cancelled 91-100."""
    gha: list[Row] = [("G1", "GHA01", 11, 90, HELD), ("G1", "GHA01", 91, 100, CANCELLED)]
    che: list[Row] = [("C1", "GHA01", 1, 10, HELD), ("C1", "CHE01", 1, 50, HELD)]
    return {
        "issued": ISSUED,
        "hub_rows": {"GHA01": list(gha), "CHE01": list(che)},
        "local_rows": {"GHA01": list(gha), "CHE01": list(che)},
        "hub_statuses": {"GHA01-1": 4, "GHA01-2": 4, "GHA01-3": 7},
        "local_statuses": {"GHA01": {"GHA01-1": 4, "GHA01-2": 4, "GHA01-3": 7},
                           "CHE01": {"GHA01-1": 4}},
    }  # fmt: skip


def test_a_consistent_network_passes() -> None:
    findings = check_all(Findings(), **world())
    assert findings.ok, findings.failures
    assert findings.checked >= 12


def pending_at_hub(w: dict[str, Any]) -> None:
    w["hub_statuses"]["GHA01-3"] = 2


def pending_at_registry(w: dict[str, Any]) -> None:
    w["local_statuses"]["CHE01"]["GHA01-1"] = 8


def statuses_differ(w: dict[str, Any]) -> None:
    w["local_statuses"]["CHE01"]["GHA01-1"] = 7


def applied_twice(w: dict[str, Any]) -> None:  # a completion applied again: units duplicated
    w["local_rows"]["CHE01"].append(("C1", "GHA01", 5, 10, HELD))


def lost(w: dict[str, Any]) -> None:
    w["local_rows"]["CHE01"] = w["local_rows"]["CHE01"][1:]


def held_in_two_places(w: dict[str, Any]) -> None:  # moved, and yet still held by the source
    w["local_rows"]["GHA01"][0] = ("G1", "GHA01", 10, 90, HELD)
    w["local_rows"]["CHE01"][0] = ("C1", "GHA01", 1, 9, HELD)
    w["local_rows"]["CHE01"].append(("C1", "GHA01", 10, 10, HELD))
    w["local_rows"]["GHA01"].append(("G1", "GHA01", 0, 0, HELD))


def never_issued(w: dict[str, Any]) -> None:
    w["local_rows"]["CHE01"][1] = ("C1", "CHE01", 2, 51, HELD)


def books_differ(w: dict[str, Any]) -> None:
    w["local_rows"]["CHE01"][0] = ("C2", "GHA01", 1, 10, HELD)


def cancellation_not_applied(w: dict[str, Any]) -> None:
    w["local_rows"]["GHA01"][1] = ("G1", "GHA01", 91, 100, HELD)


DAMAGE = [pending_at_hub, pending_at_registry, statuses_differ, applied_twice, lost,
          held_in_two_places, never_issued, books_differ, cancellation_not_applied]  # fmt: skip


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda d: d.__name__)
def test_each_kind_of_damage_is_caught(damage: Callable[[dict[str, Any]], None]) -> None:
    w = world()
    damage(w)
    assert not check_all(Findings(), **w).ok
