"""The hub's AEF: the prefill of any Party with a registry of its own, from the hub's ledger,
and the consistency check of a submitted workbook against it, on a real SQLite database.

A property test: whatever sequence of proposals the registries make (authorizations, first
transfers, ITMO issuances, uses, many refused), each Party's export passes the AEF's cell
checks, checks consistent against the ledger it came from, and its holdings (replayed from its
actions) are exactly the ITMOs the ledger holds for it. Then each kind of inconsistency, made
on purpose in an otherwise faithful submission, is found and written into the workbook.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from article6.aef.check import check_workbook
from article6.aef.consistency import CONSISTENT, Outcome, annotate, check_consistency
from article6.aef.prefill import Row, materialized
from article6.aef.template import template
from article6.aef.workbook import write_workbook
from article6.model import UnitKind, UnitState
from gateway import aef
from gateway.storage import ledger
from tests.builders import T0, HubHarness
from tests.integration.test_authorization_property import Proposer, operations

PARTIES = {"GHA01": "GHA", "CHE01": "CHE", "SUS01": "SUS", "UNIR": ""}
YEAR = T0.year


def export(hub: HubHarness, party: str) -> dict[str, list[Row]]:
    return hub.database.read_now(lambda c: materialized(aef.export(c, PARTIES, party, YEAR)))


def checked(hub: HubHarness, party: str, tables: dict[str, list[Row]], path: Path) -> Outcome:
    write_workbook(path, tables)
    books = hub.database.read_now(lambda c: aef.ledger(c, PARTIES, party, YEAR))
    return check_consistency(path, books)


def ledger_itmos(hub: HubHarness, registry: str) -> int:
    blocks = hub.database.read_now(lambda c: ledger.blocks_of_registry(c, registry))
    return sum(held.unit_count for held in blocks
               if held.attributes.unit.unit_kind is UnitKind.ITMO
               and held.attributes.unit.state is UnitState.HELD)  # fmt: skip


def start(hub: HubHarness, granted: list[tuple[int, int]]) -> Proposer:
    proposer = Proposer(hub)
    proposer.outcomes((1, 700))
    for index, (kind, cap) in enumerate(granted):
        proposer.authorize(index, kind, cap, False, None)
        proposer.authorize(index, kind, cap, False, (index * 200 + 1, index * 200 + 200))
    return proposer


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 300)), min_size=3, max_size=3),
    st.lists(operations, min_size=1, max_size=25),
)
def test_any_sequence_exports_valid_and_consistent_workbooks(
    granted: list[tuple[int, int]], steps: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        hub = HubHarness.create(f"sqlite:///{Path(folder) / 'hub.db'}")
        try:
            proposer = start(hub, granted)
            for step in steps:
                proposer.apply(step)
            for registry, party in (("GHA01", "GHA"), ("CHE01", "CHE")):
                tables = export(hub, party)
                path = Path(folder) / f"{party}.xlsx"
                outcome = checked(hub, party, tables, path)
                assert check_workbook(path) == []
                assert outcome.found == [], [str(item) for item in outcome.found]
                held = sum(int(row.get("quantity") or 0) for row in tables["holdings"])
                assert held == ledger_itmos(hub, registry)
        finally:
            hub.close()


# --- each kind of inconsistency ------------------------------------------------------------


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubHarness]:
    """GHA authorizes 100 ITMOs for NDC use (200 outcomes bound) and first transfers 30 and
    then 10 of them to CHE."""
    harness = HubHarness.create(f"sqlite:///{tmp_path / 'hub.db'}")
    proposer = start(harness, [(0, 100)])
    proposer.first(0, (1, 30), True)
    proposer.first(0, (31, 40), True)
    yield harness
    harness.close()


def kinds(outcome: Outcome) -> list[tuple[str, int, str]]:
    return [(item.sheet, item.row, item.kind) for item in outcome.found]


def test_a_faithful_submission_is_consistent_row_by_row(hub: HubHarness, tmp_path: Path) -> None:
    tables = export(hub, "GHA")
    assert [(r["action_type"], r["action_subtype"], r["quantity"]) for r in tables["actions"]] == [
        ("First transfer", "First transfer to another Party", 30),
        ("First transfer", "First transfer to another Party", 10),
    ]
    che = export(hub, "CHE")
    assert [(r["action_type"], r["transferring_party"]) for r in che["actions"]] == [
        ("Acquisition", "GHA"), ("Acquisition", "GHA")
    ]  # fmt: skip
    assert [(r["first_id"], r["last_id"]) for r in che["holdings"]] == [
        ("CA0001-GHA01-GHA-1-2024", "CA0001-GHA01-GHA-40-2024")
    ]
    outcome = checked(hub, "GHA", tables, tmp_path / "GHA.xlsx")
    assert outcome.consistent
    assert outcome.results == {4: CONSISTENT, 5: CONSISTENT}


def test_each_kind_of_inconsistency_is_found_and_written_into_the_workbook(
    hub: HubHarness, tmp_path: Path
) -> None:
    tables = export(hub, "GHA")
    first, second = tables["actions"]
    tables["actions"] = [
        # Row 4: the ids and quantity differ from the ledger's first transfer of 1 to 30.
        {**first, "last_id": "CA0001-GHA01-GHA-25-2024", "quantity": 25},
        # Row 5: no such transaction, and (25 + 80 > 100) beyond the authorized quantity;
        # the second first transfer (31 to 40) is left out.
        {**second, "first_id": "CA0001-GHA01-GHA-130-2024",
         "last_id": "CA0001-GHA01-GHA-209-2024", "quantity": 80},
        # Row 6: under an authorization the ledger does not have.
        {**second, "authorization_id": "GHA-NONE", "first_id": "CA0001-GHA01-GHA-300-2024",
         "last_id": "CA0001-GHA01-GHA-300-2024", "quantity": 1},
        # Row 7: a cell the syntax check refuses.
        {**second, "cooperative_approach": "CA1"},
    ]  # fmt: skip
    outcome = checked(hub, "GHA", tables, tmp_path / "GHA.xlsx")
    assert sorted(kinds(outcome)) == sorted([
        ("Table 3", 4, "differs"),
        ("Table 3", 5, "no_matching_transaction"),
        ("Table 3", 5, "beyond_authorized_quantity"),
        ("Table 3", 6, "no_matching_transaction"),
        ("Table 3", 6, "unknown_authorization"),
        ("Table 3", 7, "invalid"),
        ("Table 3", 0, "missing_from_submission"),
    ])  # fmt: skip
    differs = next(item for item in outcome.found if item.kind == "differs")
    assert "CA0001-GHA01-GHA-1-2024 to CA0001-GHA01-GHA-30-2024" in differs.detail
    annotated = tmp_path / "GHA-checked.xlsx"
    annotate(tmp_path / "GHA.xlsx", annotated, outcome.results)
    sheet = load_workbook(annotated)["Table 3"]
    column = template().table("actions").keys.index("consistency") + 1
    results = [sheet.cell(row, column).value for row in range(4, 8)]
    assert all(str(result).startswith("Inconsistent: ") for result in results), results
    assert "beyond the 100 authorized" in str(results[1])


def test_uses_beyond_holdings_and_wrong_holdings_are_found(hub: HubHarness, tmp_path: Path) -> None:
    tables = export(hub, "CHE")
    acquired = tables["actions"][0]
    held = tables["holdings"][0]
    later = acquired["date"].replace(day=min(acquired["date"].day + 3, 28))
    tables["actions"].append({
        **acquired, "action_type": "Use", "action_subtype": "Use towards NDC", "date": later,
        "first_id": "CA0001-GHA01-GHA-35-2024", "last_id": "CA0001-GHA01-GHA-45-2024",
        "quantity": 11, "transferring_party": "", "acquiring_party": "", "using_party": "CHE",
    })  # fmt: skip
    tables["holdings"] = [{**held, "last_id": "CA0001-GHA01-GHA-20-2024", "quantity": 20},
                          {**held, "first_id": "CA0001-GHA01-GHA-41-2024",
                           "last_id": "CA0001-GHA01-GHA-41-2024", "quantity": 1}]  # fmt: skip
    outcome = checked(hub, "CHE", tables, tmp_path / "CHE.xlsx")
    assert sorted(kinds(outcome)) == [
        ("Table 3", 6, "beyond_holdings"),
        ("Table 3", 6, "no_matching_transaction"),
        ("Table 4", 0, "holding_missing"),
        ("Table 4", 5, "holding_not_in_ledger"),
    ]
    beyond = next(item for item in outcome.found if item.kind == "beyond_holdings")
    assert beyond.detail.startswith("5 of its use's ITMOs")
    assert outcome.results[6].startswith("Inconsistent: no use of ")


def test_a_matched_row_found_beyond_the_authorization_is_inconsistent(
    hub: HubHarness, tmp_path: Path
) -> None:
    """The ledger's own rows against a lower quantity: the row matches its transaction, and
    its result still says what is wrong."""
    tables = export(hub, "GHA")
    books = hub.database.read_now(lambda c: aef.ledger(c, PARTIES, "GHA", YEAR))
    path = tmp_path / "GHA.xlsx"
    write_workbook(path, tables)
    outcome = check_consistency(path, replace(books, caps={**books.caps, "GHA-P0": 35}))
    assert kinds(outcome) == [("Table 3", 5, "beyond_authorized_quantity")]
    assert outcome.results[4] == CONSISTENT
    assert outcome.results[5] == ("Inconsistent: first transfers under GHA-P0 reach 40, "
                                  "beyond the 35 authorized")  # fmt: skip


def test_a_date_more_than_a_day_off_differs(hub: HubHarness, tmp_path: Path) -> None:
    tables = export(hub, "GHA")
    moved = copy.deepcopy(tables)
    day = tables["actions"][0]["date"]
    moved["actions"][0]["date"] = day.replace(day=day.day + 2)
    outcome = checked(hub, "GHA", moved, tmp_path / "GHA.xlsx")
    assert kinds(outcome) == [("Table 3", 4, "differs")]
    assert outcome.found[0].detail.startswith("date ")


def test_the_hub_exports_only_for_a_party_with_a_registry(hub: HubHarness) -> None:
    with pytest.raises(aef.NoRegistry):
        export(hub, "SGP")
