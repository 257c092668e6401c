"""Checking an AEF workbook cell by cell, as public AEF syntax checkers do: each sheet is
there with its headings, every cell matches its column's pattern or vocabulary, required
cells are filled, dates and years are real, and in each action or holding row the first and
last ITMO ids describe one block of the quantity given."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from openpyxl.utils import get_column_letter

from article6.aef.spans import id_parts
from article6.aef.template import Column, Table, Template, template
from article6.aef.workbook import DATE_FORMAT, opened, stream

YEARS = range(1990, 2101)


@dataclass(frozen=True)
class Finding:
    """One thing wrong: where (sheet and cell, or the sheet alone), and what."""

    sheet: str
    cell: str
    column: str
    value: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.sheet}!{self.cell}" if self.cell else self.sheet
        what = f" ({self.column})" if self.column else ""
        shown = f": {self.value!r}" if self.value else ""
        return f"{where}{what}: {self.problem}{shown}"


def check_workbook(path: Path, layout: Template | None = None) -> list[Finding]:
    """Every finding in the workbook, reading each sheet's rows one at a time."""
    layout = layout or template()
    findings: list[Finding] = []
    with opened(path) as book:
        for table in layout.tables:
            if table.sheet not in book.sheetnames:
                findings.append(Finding(table.sheet, "", "", "", "sheet missing"))
                continue
            headings, rows = stream(book[table.sheet], layout)
            findings.extend(check_sheet(table, table.sheet, headings, rows, layout.heading_row))
    return findings


def check_sheet(
    table: Table,
    sheet: str,
    headings: Sequence[str],
    rows: Iterable[tuple[int, Sequence[str]]],
    heading_row: int,
) -> Iterator[Finding]:
    if tuple(headings) != table.headings:
        for index, heading in enumerate(table.headings):
            found = headings[index] if index < len(headings) else ""
            if found != heading:
                cell = f"{get_column_letter(index + 1)}{heading_row}"
                yield Finding(sheet, cell, heading, found, f"heading should be {heading!r}")
        return  # the columns are not where they should be: their cells mean nothing
    for number, cells in rows:
        yield from check_row(table, sheet, number, cells)


def check_row(table: Table, sheet: str, number: int, cells: Sequence[str]) -> Iterator[Finding]:
    values = {column.key: cells[i] if i < len(cells) else "" for i, column in
              enumerate(table.columns)}  # fmt: skip
    bad = set()
    for index, column in enumerate(table.columns):
        problem = check_cell(column, values[column.key])
        if problem:
            bad.add(column.key)
            cell = f"{get_column_letter(index + 1)}{number}"
            yield Finding(sheet, cell, column.heading, values[column.key], problem)
    if "first_id" in values and not bad & {"first_id", "last_id"}:
        # Cells already reported are not compared again with the ids.
        problem = check_block({key: value for key, value in values.items() if key not in bad})
        if problem:
            yield Finding(sheet, f"row {number}", "", "", problem)


def check_cell(column: Column, value: str) -> str | None:
    """What is wrong with ``value`` in ``column``, or None."""
    if not value:
        return "required" if column.required else None
    if column.vocabulary:
        known = value in column.vocabulary
        return None if known else f"not one of the {column.vocabulary_name.replace('_', ' ')}"
    assert column.pattern is not None
    if not column.pattern.fullmatch(value):
        return f"does not match the {column.pattern_name.replace('_', ' ')} pattern"
    return _real(column.pattern_name, value)


def _real(pattern_name: str, value: str) -> str | None:
    """Dates and years that match their pattern must also exist."""
    if pattern_name == "date":
        try:
            datetime.strptime(value, DATE_FORMAT)
        except ValueError:
            return "not a date (dd/mm/yyyy)"
    if pattern_name == "year" and int(value) not in YEARS:
        return f"not a plausible year ({YEARS.start}-{YEARS.stop - 1})"
    return None


def check_block(values: dict[str, str]) -> str | None:
    """The first and last ids name one block (same approach, registry, Party and vintage,
    serials in order) of the row's quantity, and agree with the row's approach,
    first-transferring Party and vintage."""
    first, last = id_parts(values.get("first_id", "")), id_parts(values.get("last_id", ""))
    if first is None or last is None:
        return None  # blank, or the cells themselves are reported
    if first[0] != last[0]:
        return "first and last ITMO ids are not of one block (approach, registry, Party, vintage)"
    if last[1] < first[1]:
        return "last ITMO id's serial is below the first's"
    quantity = values.get("quantity", "")
    if quantity.isdigit() and values.get("metric") == "GHG":
        count = last[1] - first[1] + 1
        if int(quantity) != count:
            return f"quantity {quantity} but the ids span {count} units"
    # The row's "Party ITMO registry" is where the action is recorded, which need not be the
    # registry the ITMOs originate in (an acquisition of another Party's ITMOs): not compared.
    (prefix, vintage), _ = first
    approach, _, party = prefix.split("-")
    expected = {"cooperative_approach": approach, "first_transferring_party": party,
                "vintage": vintage}  # fmt: skip
    for key, wanted in expected.items():
        if values.get(key) and values[key] != wanted:
            return f"{key.replace('_', ' ')} {values[key]} but the ITMO ids say {wanted}"
    return None
