"""Consistency checks of a submitted AEF workbook against the books, as the secretariat's
platform makes them: every action and holding row of the Party's submission (filled in by
hand or by any tool) is compared with what the ledger recorded, and each action row gets its
result in the "Result of the consistency checks" column.

What is found, by kind (``Inconsistency.kind``):

- ``invalid``: a cell the syntax check refuses; the row is not compared;
- ``no_matching_transaction``: an action row the ledger has no action for;
- ``differs``: an action row whose ids, quantity or any other cell differs from the ledger's;
- ``missing_from_submission``: an action of the ledger's that no row reports;
- ``beyond_holdings``: a transfer, use or cancellation of ITMOs the Party did not hold, by
  its own rows (its holdings at the start of the year are the ledger's);
- ``unknown_authorization``: a first transfer under an authorization the ledger does not have;
- ``beyond_authorized_quantity``: first transfers under an authorization beyond its quantity;
- ``holding_not_in_ledger``: a Table 4 row of ITMOs the ledger does not show as held at the
  end of the year;
- ``holding_missing``: ITMOs the ledger shows as held that no Table 4 row reports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook

from article6.aef.check import check_row, check_sheet
from article6.aef.held import Holdings
from article6.aef.prefill import Held, Row, apply, holding_rows, label
from article6.aef.spans import Space, Span, span
from article6.aef.template import Table, Template, template
from article6.aef.workbook import DATE_FORMAT, opened, stream, text

CONSISTENT = "Consistent"


@dataclass(frozen=True)
class Inconsistency:
    """One thing the submission and the ledger disagree on: where (sheet, and row when it is
    a row of the submission's) and what."""

    sheet: str
    row: int  # 0: not a row of the submission (an action or holding it leaves out)
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.sheet}!row {self.row}" if self.row else self.sheet
        return f"{where}: {self.detail}"


@dataclass(frozen=True)
class Ledger:
    """What the books say for one Party: its action rows of every year up to the reported
    one (in the order they completed), and its authorizations' quantities (0: no cap)."""

    party: str
    year: int
    actions: Sequence[Row]
    caps: Mapping[str, int]
    section: str


@dataclass
class Outcome:
    """The check's result: each Table 3 row's result, and every inconsistency found."""

    results: dict[int, str] = field(default_factory=dict)
    found: list[Inconsistency] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.found

    def add(self, sheet: str, row: int, kind: str, detail: str) -> None:
        self.found.append(Inconsistency(sheet, row, kind, detail))
        if row and sheet == template().table("actions").sheet:
            earlier = self.results.get(row, CONSISTENT)
            said = f"{earlier}; {detail}" if earlier != CONSISTENT else f"Inconsistent: {detail}"
            self.results[row] = said


@dataclass(frozen=True)
class Submitted:
    """One data row of the submission: its row number and cells as text, by column key."""

    number: int
    cells: dict[str, str]

    @property
    def span(self) -> Span | None:
        return span(self.cells)

    @property
    def day(self) -> date:
        return datetime.strptime(self.cells["date"], DATE_FORMAT).date()


# --- reading the submission ----------------------------------------------------------------


def read(path: Path, table: Table, layout: Template, outcome: Outcome) -> list[Submitted]:
    """The sheet's rows that pass the syntax check; the others are reported as invalid."""
    with opened(path) as book:
        if table.sheet not in book.sheetnames:
            outcome.add(table.sheet, 0, "invalid", "sheet missing")
            return []
        headings, rows = stream(book[table.sheet], layout)
        listed = list(rows)
        bad_headings = list(check_sheet(table, table.sheet, headings, [], layout.heading_row))
    for finding in bad_headings:
        outcome.add(table.sheet, 0, "invalid", str(finding))
    if bad_headings:
        return []
    valid = []
    for number, cells in listed:
        problems = list(check_row(table, table.sheet, number, cells))
        for problem in problems:
            where = f"{problem.cell} ({problem.column})" if problem.column else problem.cell
            outcome.add(table.sheet, number, "invalid", f"{where}: {problem.problem}")
        if not problems:
            padded = [*cells, *[""] * (len(table.keys) - len(cells))]
            valid.append(Submitted(number, dict(zip(table.keys, padded, strict=False))))
    return valid


# --- Table 3: actions ----------------------------------------------------------------------

_NOT_COMPARED = {"first_id", "last_id", "consistency", "explanatory_information",
                 "mitigation_type"}  # fmt: skip
_QUANTITIES = {"quantity", "quantity_non_ghg", "first_unit_id", "last_unit_id"}
# The books may not know the other Party of a movement (a section of the international
# registry, seen from the hub): where they do not, the Party's own word is taken.
_KNOWN_ONLY_IF_GIVEN = {"transferring_party", "acquiring_party"}


@dataclass
class Expected:
    row: Row
    span: Span
    matched: bool = False


def _differences(
    submitted: Submitted, expected: Row, same_ids: bool, tolerance: timedelta
) -> list[str]:
    said = []
    for key, value in submitted.cells.items():
        if key in _NOT_COMPARED or key == "date" or (key in _QUANTITIES and not same_ids):
            continue  # different ids are reported once, not again as a quantity
        wanted = text(expected.get(key, ""))
        if value != wanted and (wanted or key not in _KNOWN_ONLY_IF_GIVEN):
            said.append(f"{key.replace('_', ' ')} {value or '(empty)'} but the ledger has "
                        f"{wanted or '(empty)'}")  # fmt: skip
    if abs(submitted.day - expected["date"]) > tolerance:
        said.append(f"date {submitted.cells['date']} but the ledger has {text(expected['date'])}")
    return said


class Actions:
    """The ledger's action rows of the year, found by action type and ids: an exact match
    by a dictionary lookup, an overlapping one (a row that differs) by a scan of its space."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self.exact: dict[tuple[str, Span], list[Expected]] = defaultdict(list)
        self.by_space: dict[tuple[str, Space], list[Expected]] = defaultdict(list)
        self.rows: list[Expected] = []
        for row in rows:
            where = span(row)
            assert where is not None, row
            expected = Expected(row, where)
            self.exact[row["action_type"], where].append(expected)
            self.by_space[row["action_type"], where.space].append(expected)
            self.rows.append(expected)

    def match(self, submitted: Submitted) -> tuple[Expected | None, bool]:
        """The ledger's action the row reports (exactly, or one its ids overlap), unmatched
        so far; and whether the ids are exactly the ledger's."""
        where, kind = submitted.span, submitted.cells["action_type"]
        assert where is not None
        exact = [item for item in self.exact.get((kind, where), []) if not item.matched]
        overlapping = [] if exact else [
            item for item in self.by_space.get((kind, where.space), [])
            if not item.matched and item.span.overlaps(where)
        ]  # fmt: skip
        # Of several same-id actions (acquired, sent on, acquired again), the nearest in date.
        for pool, same in ((exact, True), (overlapping, False)):
            if pool:
                best = min(pool, key=lambda item: abs(item.row["date"] - submitted.day))
                best.matched = True
                return best, same
        return None, False


def check_actions(
    rows: Sequence[Submitted], ledger: Ledger, tolerance: timedelta, outcome: Outcome
) -> None:
    sheet = template().table("actions").sheet
    known = Actions(row for row in ledger.actions if row["date"].year == ledger.year)
    for row in rows:
        if row.span is None:
            continue  # the syntax check reported it
        expected, same = known.match(row)
        if expected is None:
            action = row.cells["action_type"].lower()
            outcome.add(sheet, row.number, "no_matching_transaction",
                        f"no {action} of {row.span} in the ledger")  # fmt: skip
            continue
        if not same:
            outcome.add(sheet, row.number, "differs",
                        f"ids {row.span} but the ledger has {expected.span}")  # fmt: skip
        for difference in _differences(row, expected.row, same, tolerance):
            outcome.add(sheet, row.number, "differs", difference)
        if row.number not in outcome.results:
            outcome.results[row.number] = CONSISTENT
    for left in (item for item in known.rows if not item.matched):
        action, day = left.row["action_type"].lower(), text(left.row["date"])
        outcome.add(sheet, 0, "missing_from_submission",
                    f"the {action} of {left.span} on {day} is not reported")  # fmt: skip


def check_holdings_used(rows: Sequence[Submitted], ledger: Ledger, outcome: Outcome) -> None:
    """Replay the Party's own rows from its holdings at the start of the year (the ledger's):
    what it transfers, uses or cancels it must hold. Rows are taken by date and, within a
    day, in the order the Party lists them (the AEF lists actions in the order they were
    made)."""
    sheet = template().table("actions").sheet
    held: Held = Holdings()
    for earlier in ledger.actions:
        if earlier["date"].year < ledger.year:
            apply(held, earlier)
    ordered = sorted((row for row in rows if row.span is not None), key=lambda row: row.day)
    for row in ordered:
        missing = apply(held, _as_row(row))
        if missing:
            outcome.add(sheet, row.number, "beyond_holdings",
                        f"{missing} of its {row.cells['action_type'].lower()}'s "
                        "ITMOs were not held by the Party")  # fmt: skip


def check_authorized(rows: Sequence[Submitted], ledger: Ledger, outcome: Outcome) -> None:
    """First transfers under each authorization, those of earlier years (the ledger's) and
    the year's (the Party's rows), stay within its authorized quantity."""
    sheet = template().table("actions").sheet
    first = label("action_types", "first_transfer")
    so_far: dict[str, int] = defaultdict(int)
    for earlier in ledger.actions:
        if earlier["date"].year < ledger.year and earlier["action_type"] == first:
            so_far[earlier["authorization_id"]] += _count(earlier)
    for row in sorted(rows, key=lambda row: row.day):
        where, granted = row.span, row.cells["authorization_id"]
        if row.cells["action_type"] != first or where is None:
            continue
        if granted not in ledger.caps:
            outcome.add(sheet, row.number, "unknown_authorization",
                        f"authorization {granted} is not in the ledger")  # fmt: skip
            continue
        so_far[granted] += where.count
        cap = ledger.caps[granted]
        if cap and so_far[granted] > cap:
            outcome.add(sheet, row.number, "beyond_authorized_quantity",
                        f"first transfers under {granted} reach {so_far[granted]}, beyond "
                        f"the {cap} authorized")  # fmt: skip


def _count(row: Row) -> int:
    return int(row.get("quantity") or row.get("quantity_non_ghg") or 0)


def _as_row(row: Submitted) -> Row:
    return {**row.cells, "date": row.day}


# --- Table 4: holdings ---------------------------------------------------------------------


def check_holdings(rows: Sequence[Submitted], ledger: Ledger, outcome: Outcome) -> None:
    """Table 4 holds exactly the ITMOs the ledger shows as held at the end of the year."""
    sheet = template().table("holdings").sheet
    held: Held = Holdings()
    for action in ledger.actions:
        apply(held, action)
    for row in rows:
        where = row.span
        if where is None:
            continue
        missing = held.remove(where)
        if missing:
            outcome.add(sheet, row.number, "holding_not_in_ledger",
                        f"{missing} of the ITMOs {where} are not held at the "
                        f"end of {ledger.year} by the ledger")  # fmt: skip
    for left in holding_rows(held, ledger.section):
        gone = span(left)
        outcome.add(sheet, 0, "holding_missing",
                    f"the holding of {gone} ({_count(left)}) is not reported")  # fmt: skip


# --- the whole check, and the annotated copy -----------------------------------------------


def check_consistency(path: Path, ledger: Ledger, layout: Template | None = None) -> Outcome:
    """Compare a submitted workbook's Tables 3 and 4 with the ledger."""
    layout = layout or template()
    tolerance = timedelta(days=layout.date_tolerance_days)
    outcome = Outcome()
    acted = read(path, layout.table("actions"), layout, outcome)
    check_actions(acted, ledger, tolerance, outcome)
    check_holdings_used(acted, ledger, outcome)
    check_authorized(acted, ledger, outcome)
    check_holdings(read(path, layout.table("holdings"), layout, outcome), ledger, outcome)
    return outcome


def annotate(
    path: Path, out: Path | IO[bytes], results: Mapping[int, str], layout: Template | None = None
) -> None:
    """A copy of the workbook, every sheet as it was, with Table 3's "Result of the
    consistency checks" cells written from ``results`` (by row number)."""
    layout = layout or template()
    actions = layout.table("actions")
    column = actions.keys.index("consistency")
    copy = Workbook(write_only=True)
    with opened(path) as book:
        for name in book.sheetnames:
            sheet = copy.create_sheet(name)
            for number, values in enumerate(book[name].iter_rows(values_only=True), start=1):
                sheet.append(_with_result(values, number, results if name == actions.sheet
                                          else {}, column))  # fmt: skip
    copy.save(out)


def _with_result(
    values: Sequence[Any], number: int, results: Mapping[int, str], column: int
) -> list[Any]:
    cells = list(values)
    if number in results:
        cells.extend([None] * (column + 1 - len(cells)))
        cells[column] = results[number]
    return cells
