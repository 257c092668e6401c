"""The AEF workbook and its checker: written as the template lays it out, read back cell by
cell, and every kind of bad cell found where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from article6.aef.check import check_workbook
from article6.aef.template import template
from article6.aef.workbook import opened, render, stream, write_workbook
from article6.cli import main
from article6.node.aef import _reported
from gateway.config import load_config
from tests.unit.test_delivery_policy import MINIMAL_HUB, hub_config

ACTION = {
    "date": "15/03/2026", "action_type": "First transfer",
    "action_subtype": "First transfer to another Party", "cooperative_approach": "CA0001",
    "authorization_id": "GHA-2026-001", "first_transferring_party": "GHA", "registry": "GHA01",
    "first_id": "CA0001-GHA01-GHA-1-2024", "last_id": "CA0001-GHA01-GHA-250,000-2024",
    "metric": "GHG", "quantity": 250_000, "vintage": 2024, "transferring_party": "GHA",
    "acquiring_party": "CHE",
}  # fmt: skip
AUTHORIZATION = {
    "authorization_id": "GHA-2026-001", "date": "01/02/2026", "cooperative_approach": "CA0001",
    "version": 2, "quantity": 800_000, "metric": "GHG", "purposes": "NDC and OIMP",
    "authorized_parties": "CHE; SGP", "occurred_from": 2021, "occurred_to": 2030,
    "use_from": 2026, "use_to": 2035, "first_transfer_definition": "Authorization",
}  # fmt: skip
HOLDING = {
    "cooperative_approach": "CA0001", "authorization_id": "GHA-2026-001",
    "first_transferring_party": "GHA", "registry": "GHA01",
    "first_id": "CA0001-GHA01-GHA-250001-2024", "last_id": "CA0001-GHA01-GHA-300000-2024",
    "metric": "GHG", "quantity": 50_000, "vintage": 2024,
}  # fmt: skip
ENTITY = {
    "date": "01/02/2026", "name": "Volta Cookstoves Ltd", "country": "GHA",
    "identification_number": "CS-000123", "cooperative_approach": "CA0001",
    "authorization_id": "GHA-2026-001",
}  # fmt: skip
SUMMARY: list[dict[str, Any]] = [
    {"item": "Party", "value": "GHA"}, {"item": "Reported year", "value": 2026}
]  # fmt: skip


def workbook(tmp_path: Path, **changes: dict[str, Any]) -> Path:
    """A valid workbook, with ``changes`` applied to the one row of the named tables."""
    rows: dict[str, list[dict[str, Any]]] = {
        "summary": SUMMARY, "authorizations": [AUTHORIZATION], "actions": [ACTION],
        "holdings": [HOLDING], "entities": [ENTITY],
    }  # fmt: skip
    for table, change in changes.items():
        rows[table] = [{**rows[table][0], **change}]
    path = tmp_path / "aef.xlsx"
    write_workbook(path, rows)
    return path


def findings(path: Path) -> list[str]:
    return [str(finding) for finding in check_workbook(path)]


def test_a_workbook_is_laid_out_as_the_template_and_checks_clean(tmp_path: Path) -> None:
    path = workbook(tmp_path)
    assert findings(path) == []
    layout = template()
    book = load_workbook(path, read_only=True)
    assert book.sheetnames == ["Table 1", "Table 2", "Table 3", "Table 4", "Table 5"]
    sheet = list(book["Table 3"].iter_rows(values_only=True))
    assert sheet[0][0] == "Table 3. Actions"
    assert sheet[layout.heading_row - 1][:4] == (
        "Action date", "Action type", "Action subtype", "Cooperative approach ID"
    )  # fmt: skip
    assert sheet[layout.first_data_row - 1][7:9] == (
        "CA0001-GHA01-GHA-1-2024", "CA0001-GHA01-GHA-250,000-2024"
    )  # fmt: skip
    book.close()
    with opened(path) as read:
        headings, rows = stream(read["Table 3"], layout)
        assert headings == template().table("actions").headings
        assert [number for number, _ in rows] == [layout.first_data_row]


@pytest.mark.parametrize(
    ("table", "change", "expected"),
    [
        ("actions", {"cooperative_approach": "CA12"},
         "Table 3!D4 (Cooperative approach ID): does not match the cooperative approach "
         "pattern: 'CA12'"),
        ("actions", {"registry": "A64MR"},
         "Table 3!G4 (Party ITMO registry): does not match the registry pattern: 'A64MR'"),
        ("actions", {"first_id": "CA0001-A64MR-GHA-1-2024"},
         "Table 3!H4 (First ITMO ID): does not match the itmo id pattern: "
         "'CA0001-A64MR-GHA-1-2024'"),
        ("actions", {"action_type": "Authorization"},
         "Table 3!B4 (Action type): not one of the action types: 'Authorization'"),
        ("actions", {"date": "2026-03-15"},
         "Table 3!A4 (Action date): does not match the date pattern: '2026-03-15'"),
        ("actions", {"date": "31/02/2026"},
         "Table 3!A4 (Action date): not a date (dd/mm/yyyy): '31/02/2026'"),
        ("actions", {"vintage": 1800},
         "Table 3!Q4 (Vintage): not a plausible year (1990-2100): '1800'"),
        ("actions", {"metric": "tCO2e"},
         "Table 3!M4 (Metric): not one of the metrics: 'tCO2e'"),
        ("actions", {"authorization_id": ""},
         "Table 3!E4 (Authorization ID): required"),
        ("actions", {"quantity": 10},
         "Table 3!row 4: quantity 10 but the ids span 250000 units"),
        ("actions", {"last_id": "CA0001-GHA01-GHA-250000-2025", "quantity": ""},
         "Table 3!row 4: first and last ITMO ids are not of one block (approach, registry, "
         "Party, vintage)"),
        ("holdings", {"first_id": "CA0001-GHA01-GHA-300001-2024"},
         "Table 4!row 4: last ITMO id's serial is below the first's"),
        ("holdings", {"vintage": 2023},
         "Table 4!row 4: vintage 2023 but the ITMO ids say 2024"),
        ("authorizations", {"purposes": "Voluntary"},
         "Table 2!K4 (Purposes for authorization): not one of the purposes: 'Voluntary'"),
        ("authorizations", {"authorized_parties": "CHE, SGP"},
         "Table 2!L4 (Authorized Parties): does not match the parties pattern: 'CHE, SGP'"),
        ("authorizations", {"first_transfer_definition": "Transfer"},
         "Table 2!T4 (First transfer definition for OIMP): not one of the first transfer "
         "definitions: 'Transfer'"),
        ("entities", {"country": "Ghana"},
         "Table 5!C4 (Country of incorporation): does not match the party pattern: 'Ghana'"),
    ],
)  # fmt: skip
def test_each_kind_of_bad_cell_is_found_where_it_is(
    tmp_path: Path, table: str, change: dict[str, Any], expected: str
) -> None:
    assert findings(workbook(tmp_path, **{table: change})) == [expected]


def test_a_missing_sheet_or_a_moved_heading_is_found(tmp_path: Path) -> None:
    path = workbook(tmp_path)
    book = load_workbook(path)
    del book["Table 5"]
    book["Table 4"]["B3"] = "Authorisation"
    book.save(path)
    assert findings(path) == [
        "Table 4!B3 (Authorization ID): heading should be 'Authorization ID': 'Authorisation'",
        "Table 5: sheet missing",
    ]


def test_csv_and_json_carry_the_same_rows(tmp_path: Path) -> None:
    table = template().table("actions")
    csv_text = render([ACTION], table, "csv").splitlines()
    assert csv_text[0].split(",")[:2] == ["Action date", "Action type"]
    assert csv_text[1].startswith("15/03/2026,First transfer,")
    assert '"quantity": 250000' in render([ACTION], table, "json")


def test_the_command_line_reports_each_finding_and_exits_by_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = workbook(tmp_path)
    assert main(["aef", "check", str(clean)]) == 0
    assert capsys.readouterr().out.strip() == f"{clean}: every cell valid"
    bad = workbook(tmp_path, actions={"registry": "A64MR"})
    assert main(["aef", "check", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "Table 3!G4 (Party ITMO registry): does not match the registry pattern: 'A64MR'",
        f"{bad}: 1 findings",
    ]
    text = tmp_path / "not.xlsx"
    text.write_text("hello")
    assert main(["aef", "check", str(text)]) == 2
    assert "is not an AEF workbook" in capsys.readouterr().err


def test_the_registry_ids_kept_for_a64er_itmo_ids_are_refused_in_the_directory(
    tmp_path: Path,
) -> None:
    config = hub_config(
        tmp_path,
        MINIMAL_HUB + '\n[[registries]]\nregistry_id = "GHA64"\nendpoint = "127.0.0.1:1"\n',
    )
    with pytest.raises(ValueError, match=r"the digits 64 are kept for the ITMO ids of A6\.4ERs"):
        load_config(config)


def test_an_export_says_how_far_each_pass_over_the_books_has_read() -> None:
    said: list[str] = []
    items = iter(range(45_000))
    reading = _reported(items, 1, said.append)  # type: ignore[arg-type]
    for n, _ in enumerate(reading):
        if n == 41_000:  # a year's pass stops at its year's end
            break
    reading.close()
    assert [line.split(" (")[0] for line in said[:2]] == [
        "AEF: pass 1 over the books, 20,000 transactions read",
        "AEF: pass 1 over the books, 40,000 transactions read",
    ]
    assert said[2].startswith("AEF: pass 1 over the books done, 41,001 transactions read in ")
    assert len(said) == 3
