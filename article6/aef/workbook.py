"""The AEF workbook: written in openpyxl's write-only mode (memory flat in the number of
rows), read in its read-only mode, laid out as the template is: one sheet per table, its
title in the first row, the column headings in ``heading_row``, one row per block per action
from ``first_data_row`` on. CSV and JSON carry the same rows for machines."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from zipfile import BadZipFile

from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from article6.aef.template import Table, Template, template

Row = Mapping[str, Any]
DATE_FORMAT = "%d/%m/%Y"  # dates as the template writes them
# What opening a file that is no .xlsx workbook raises (a sheet part missing: KeyError).
NOT_A_WORKBOOK = (InvalidFileException, BadZipFile, KeyError, OSError)


def write_workbook(
    path: Path | IO[bytes], rows: Mapping[str, Iterable[Row]], layout: Template | None = None
) -> None:
    """Write every table of the template (empty ones too) with ``rows[table.key]``."""
    layout = layout or template()
    book = Workbook(write_only=True)
    for table in layout.tables:
        sheet = book.create_sheet(table.sheet)
        sheet.append([table.title])
        for _ in range(layout.heading_row - 2):
            sheet.append([])
        sheet.append(list(table.headings))
        for row in rows.get(table.key, ()):
            sheet.append([_excel(row.get(key)) for key in table.keys])
    book.save(path)


def _excel(value: Any) -> Any:
    """Numbers stay numbers, dates are written as the template writes them (dd/mm/yyyy)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime | date):
        return value.strftime(DATE_FORMAT)
    return value


@contextlib.contextmanager
def opened(path: Path) -> Iterator[Any]:
    """The workbook in openpyxl's read-only mode: rows are read as they are needed."""
    book = load_workbook(path, read_only=True, data_only=True)
    try:
        yield book
    finally:
        book.close()


def stream(
    worksheet: Any, layout: Template
) -> tuple[tuple[str, ...], Iterator[tuple[int, tuple[str, ...]]]]:
    """A sheet's headings, and its data rows (number, cells as text) one at a time, so that
    memory does not grow with the rows."""
    rows = enumerate(worksheet.iter_rows(values_only=True), start=1)
    headings: tuple[str, ...] = ()
    for number, values in rows:
        if number == layout.heading_row:
            headings = _trimmed(tuple(text(value) for value in values))
            break

    def data() -> Iterator[tuple[int, tuple[str, ...]]]:
        for number, values in rows:
            cells = tuple(text(value) for value in values)
            if number >= layout.first_data_row and any(cells):
                yield number, cells

    return headings, data()


def _trimmed(cells: tuple[str, ...]) -> tuple[str, ...]:
    end = len(cells)
    while end and not cells[end - 1]:
        end -= 1
    return cells[:end]


def text(value: Any) -> str:
    """A cell's value as the text a person reads in it."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.strftime(DATE_FORMAT)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def render(rows: Iterable[Row], table: Table, form: str) -> str:
    """CSV (the headings, then the rows) or JSON (a list of objects keyed by column key)."""
    listed = [{key: row.get(key, "") for key in table.keys} for row in rows]
    if form == "json":
        return json.dumps([{k: _json(v) for k, v in row.items()} for row in listed], indent=2)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.headings)
    writer.writerows([text(_excel(row[key])) for key in table.keys] for row in listed)
    return out.getvalue()


def _json(value: Any) -> Any:
    return _excel(value) if isinstance(value, datetime | date) else value


FORMATS = ("csv", "json", "xlsx")


def export_problem(form: str, table: str, layout: Template | None = None) -> str | None:
    """What is wrong with an export request's format and table (empty: the defaults)."""
    known = [each.key for each in (layout or template()).tables]
    if (form or "csv") in FORMATS and (table or "actions") in known:
        return None
    return f"format is {', '.join(FORMATS)}; table one of {', '.join(known)}"


def exported(rows: Mapping[str, Iterable[Row]], form: str, table: str) -> tuple[str, bytes]:
    """An export as its reply carries it: one table as CSV or JSON text, or (xlsx) the whole
    workbook's bytes."""
    if form == "xlsx":
        out = io.BytesIO()
        write_workbook(out, rows)
        return "", out.getvalue()
    chosen = template().table(table or "actions")
    return render(rows[chosen.key], chosen, form or "csv"), b""
