"""Unit blocks in SQL tables: the columns, the row mapping, and overlap lookups.

Shared by the hub's ledger and every registry's holdings, so that all of them store and find
blocks the same way. Serial numbers are unsigned 64-bit; they are stored shifted by -2**63 in
signed BIGINT columns (``to_db``/``from_db``), which keeps order and exactness on SQLite
(whose INTEGER is signed 64-bit) and PostgreSQL alike.

Within a table, blocks of one serial space are disjoint, so what overlaps a range is found
with two index range scans (the one row starting at or before the range, and the rows
starting inside it): O(log n + k), never a scan of the space.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Delete,
    Integer,
    Select,
    String,
    Table,
    TextClause,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from article6.blocks import Block
from article6.direct import FEW_ROWS, Direct
from article6.identifiers import SERIAL_MAX
from article6.model import Purpose, UnitAttributes, UnitBlock, UnitKind, UnitState
from article6.reconciliation import US

SERIAL_SHIFT = 2**63
A = TypeVar("A")


def to_db(serial: int) -> int:
    return serial - SERIAL_SHIFT


def from_db(value: int) -> int:
    return value + SERIAL_SHIFT


def block_columns() -> list[Column[Any]]:
    """The columns of a block row: its space (originating registry), serials and attributes."""
    return [
        Column("space", String(16), nullable=False),
        Column("serial_first", BigInteger, nullable=False),
        Column("serial_last", BigInteger, nullable=False),
        Column("vintage", Integer, nullable=False),
        Column("cooperative_approach", String(16), nullable=False),
        Column("first_transferring_party", String(3), nullable=False),
        Column("authorization_id", String(64), nullable=False),
        Column("purpose", Integer, nullable=False),
        Column("unit_kind", Integer, nullable=False),
        Column("state", Integer, nullable=False),
        Column("activity_id", String(64), nullable=False),
        Column("host_party", String(3), nullable=False),
        Column("metric", String(16), nullable=False),
    ]


DIGEST_COLUMNS = (
    "space",
    "serial_first",
    "serial_last",
    "account_id",
    "vintage",
    "cooperative_approach",
    "first_transferring_party",
    "authorization_id",
    "purpose",
    "unit_kind",
    "state",
    "activity_id",
    "host_party",
    "metric",
)
"""The columns of a block row in the order its digest reads them (reconciliation.DigestRow)."""


def digest_texts(
    connection: Connection, table: Table, where: Mapping[str, str] | None = None
) -> Iterator[tuple[str, str]]:
    """Every block row of ``table`` (whose ``column = value`` for each of ``where``), in
    (space, serial_first) order, as its key's and its digest's input texts
    (``article6.reconciliation``), which the database writes: a million rows cost two
    strings each from the driver, not fourteen values, a tuple and two format calls in
    Python (``Tree.from_texts``)."""
    return _digest_query(table, tuple(sorted(where or {}))).tuples(connection, where or {})


def digest_totals(
    connection: Connection, table: Table, where: Mapping[str, str] | None = None
) -> dict[tuple[int, int, str], tuple[int, int]]:
    """Units and blocks of those rows by (unit kind, vintage, cooperative approach), summed
    by the database."""
    rows = _totals_query(table, tuple(sorted(where or {}))).tuples(connection, where or {})
    return {(kind, vintage, approach): (int(units), count)
            for kind, vintage, approach, units, count in rows}  # fmt: skip


SERIALS = frozenset({"serial_first", "serial_last"})


class _canonical_text(FunctionElement[str]):
    """The text a reconciliation hashes (``article6.reconciliation``): a prefix (the first
    argument, a literal), then each column's value in decimal or as is, each after the unit
    separator; stored serials (``to_db``) as the serials themselves. One formatting call a
    row, which costs the database half what a chain of concatenations does."""

    type = String()
    inherit_cache = True
    name = "a6_canonical_text"


@compiles(_canonical_text, "sqlite")
def _canonical_text_sqlite(element: _canonical_text, compiler: Any, **kw: Any) -> str:
    # %llu reads a stored serial as unsigned 64-bit; flipping its top bit first (XOR, as OR
    # minus AND: SQLite has no XOR, and neither step can overflow) undoes to_db's shift.
    prefix, *columns = element.clauses
    top = "(-9223372036854775807 - 1)"
    formats, values = [], []
    for column in columns:
        value = compiler.process(column, **kw)
        if column.key in SERIALS:
            formats.append("%llu")
            values.append(f"({value} | {top}) - ({value} & {top})")
        else:
            formats.append("%s")
            values.append(value)
    template = literal(prefix.value + "".join(US + f for f in formats), String)
    return f"printf({compiler.process(template, **kw)}, {', '.join(values)})"


@compiles(_canonical_text, "postgresql")
def _canonical_text_postgresql(element: _canonical_text, compiler: Any, **kw: Any) -> str:
    prefix, *columns = element.clauses
    values = []
    for column in columns:
        value = compiler.process(column, **kw)
        values.append(f"CAST({value} AS NUMERIC) + {SERIAL_SHIFT}" if column.key in SERIALS
                      else value)  # fmt: skip
    template = literal(prefix.value + US.join(["", *("%s" for _ in columns)]), String)
    return f"format({compiler.process(template, **kw)}, {', '.join(values)})"


@cache
def _digest_query(table: Table, keys: tuple[str, ...]) -> Direct:
    columns = [table.c[name] for name in DIGEST_COLUMNS]
    key = _canonical_text(literal("A6K1", String), *columns[:2])
    row = _canonical_text(literal("A6B1", String), *columns)
    query = select(key.label("key_text"), row.label("row_text"))
    return _where_equal(query.order_by(table.c.space, table.c.serial_first), table, keys)


@cache
def _totals_query(table: Table, keys: tuple[str, ...]) -> Direct:
    grouped = (table.c.unit_kind, table.c.vintage, table.c.cooperative_approach)
    units = func.sum(table.c.serial_last - table.c.serial_first + 1)
    query = select(*grouped, units.label("units"), func.count().label("blocks"))
    return _where_equal(query.group_by(*grouped), table, keys)


def _where_equal(query: Select[*tuple[Any, ...]], table: Table, keys: tuple[str, ...]) -> Direct:
    """``query`` for the rows whose column equals the parameter of that name, for each of
    ``keys`` (the ``where`` of ``digest_texts`` and ``digest_totals``)."""
    for name in keys:
        query = query.where(table.c[name] == bindparam(name))
    return Direct(query)


def rows_at(connection: Connection, table: Table, places: Iterable[tuple[str, int]]) -> list[Any]:
    """The rows of ``table`` starting at each (space, serial_first) of ``places`` (a
    reconciliation lists a few leaves' blocks by place: an index lookup each)."""
    found = []
    for space, first in places:
        found += _row_at(table).rows(connection, {"space": space, "first": to_db(first)})
    return found


@cache
def _row_at(table: Table) -> Direct:
    return Direct(
        select(table).where(
            table.c.space == bindparam("space"), table.c.serial_first == bindparam("first")
        )
    )


def unit_block(row: Any) -> UnitBlock:
    unit = UnitAttributes(
        originating_registry=row.space,
        vintage=row.vintage,
        cooperative_approach=row.cooperative_approach,
        first_transferring_party=row.first_transferring_party,
        authorization_id=row.authorization_id,
        purpose=Purpose(row.purpose),
        unit_kind=UnitKind(row.unit_kind),
        state=UnitState(row.state),
        activity_id=row.activity_id,
        host_party=row.host_party,
        metric=row.metric,
    )
    return Block(from_db(row.serial_first), from_db(row.serial_last), unit)


def block_row(block: UnitBlock) -> dict[str, Any]:
    unit = block.attributes
    return {
        "space": unit.originating_registry,
        "serial_first": to_db(block.serial_first),
        "serial_last": to_db(block.serial_last),
        "vintage": unit.vintage,
        "cooperative_approach": unit.cooperative_approach,
        "first_transferring_party": unit.first_transferring_party,
        "authorization_id": unit.authorization_id,
        "purpose": unit.purpose.value,
        "unit_kind": unit.unit_kind.value,
        "state": unit.state.value,
        "activity_id": unit.activity_id,
        "host_party": unit.host_party,
        "metric": unit.metric,
    }


@cache
def _overlap_query(table: Table) -> Direct:
    """The two index range scans as one statement (one round trip on PostgreSQL, and less
    work than two on SQLite). Built once per table: constructing statements costs more than
    running them, and SQLAlchemy's execution costs more than SQLite's (article6.direct)."""
    column = table.c.serial_first
    before = (
        select(table)
        .where(table.c.space == bindparam("space"), column <= bindparam("first"))
        .order_by(column.desc())
        .limit(1)
    )
    inside = select(table).where(
        table.c.space == bindparam("space"),
        column > bindparam("first"),
        column <= bindparam("last"),
    )
    return Direct(union_all(select(before.subquery()), inside))


@cache
def _insert_rows(table: Table) -> Direct:
    return Direct(insert(table))


@cache
def _delete_rows(table: Table) -> Delete:
    return delete(table).where(
        table.c.space == bindparam("space"),
        table.c.serial_first.in_(bindparam("firsts", expanding=True)),
    )


@cache
def _delete_row(table: Table) -> Direct:
    return Direct(
        delete(table).where(
            table.c.space == bindparam("space"), table.c.serial_first == bindparam("first")
        )
    )


def overlapping_rows(
    connection: Connection, table: Table, space: str, first: int, last: int
) -> list[Any]:
    """Rows of ``space`` sharing a serial with ``first..last``."""
    first, last = max(first, 0), min(last, SERIAL_MAX)
    values = {"space": space, "first": to_db(first), "last": to_db(last)}
    rows = _overlap_query(table).rows(connection, values)
    return [row for row in rows if from_db(row.serial_last) >= first]


def rows_around(
    connection: Connection, table: Table, space: str, ranges: Iterable[Block[Any]], margin: int
) -> dict[int, Any]:
    """Rows overlapping any range widened by ``margin`` (1 to include touching neighbours),
    by row id. The table needs an integer ``id`` column."""
    return rows_around_spaces(connection, table, {space: widen(ranges, margin)}).get(space, {})


def widen(ranges: Iterable[Block[Any]], margin: int) -> list[tuple[int, int]]:
    """Each range's (first, last) widened by ``margin`` serials, within the serials' bounds."""
    return [
        (max(wanted.serial_first - margin, 0), min(wanted.serial_last + margin, SERIAL_MAX))
        for wanted in ranges
    ]


def rows_around_spaces(
    connection: Connection, table: Table, widened: Mapping[str, Sequence[tuple[int, int]]]
) -> dict[str, dict[int, Any]]:
    """The rows sharing a serial with any of the (first, last) ranges, by space and row id.

    On PostgreSQL every range of every space is looked up in one statement, so a transfer of a
    thousand blocks, or a batch of proposals, costs one round trip, not one a range; SQLite,
    in process, runs a statement per range, which costs microseconds."""
    found: dict[str, dict[int, Any]] = {space: {} for space in widened}
    count = sum(len(spans) for spans in widened.values())
    if connection.dialect.name == "postgresql" and count > 1:
        values = {
            "spaces": [space for space, spans in widened.items() for _ in spans],
            "firsts": [to_db(first) for spans in widened.values() for first, _ in spans],
            "lasts": [to_db(last) for spans in widened.values() for _, last in spans],
        }
        for row in connection.execute(_lateral_query(table), values):
            found[row.space][row.id] = row
        return found
    for space, spans in widened.items():
        for first, last in spans:
            for row in overlapping_rows(connection, table, space, first, last):
                found[space][row.id] = row
    return found


@cache
def _lateral_query(table: Table) -> TextClause:
    """For each (space, first, last), the row starting at or before the range that reaches
    into it, and the rows starting inside it: the same two index range scans as
    ``overlapping_rows``, for every range at once (PostgreSQL's LATERAL)."""
    name = table.name
    return text(f"""
        SELECT t.* FROM unnest(CAST(:spaces AS text[]), CAST(:firsts AS bigint[]),
                               CAST(:lasts AS bigint[])) AS r(space, first, last)
        CROSS JOIN LATERAL (
            (SELECT * FROM {name} WHERE space = r.space AND serial_first <= r.first
             ORDER BY serial_first DESC LIMIT 1)
            UNION ALL
            (SELECT * FROM {name} WHERE space = r.space AND serial_first > r.first
             AND serial_first <= r.last)
        ) AS t
        WHERE t.serial_last >= r.first
    """)  # noqa: S608 (a table name of our own schema, never input)


def overlapping_blocks(blocks: Iterable[Block[Any]], ranges: Iterable[Block[Any]]) -> list[Any]:
    """Those of ``blocks`` that share a serial with any of ``ranges``: O((n + m) log m), so a
    transfer of a thousand blocks is not a million comparisons."""
    merged: list[list[int]] = []  # the ranges' serials as disjoint sorted [first, last] spans
    for r in sorted(ranges, key=lambda r: r.serial_first):
        if merged and r.serial_first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], r.serial_last)
        else:
            merged.append([r.serial_first, r.serial_last])
    firsts = [first for first, _ in merged]

    def overlaps(block: Block[Any]) -> bool:
        # The span starting last at or before the block's end reaches furthest of those
        # that could overlap it (the spans are disjoint and sorted).
        index = bisect_right(firsts, block.serial_last) - 1
        return index >= 0 and merged[index][1] >= block.serial_first

    return [block for block in blocks if overlaps(block)]


class Neighbourhood(Generic[A]):
    """The blocks of one space that overlap or touch some ranges, read so that a change can
    replace them (touching neighbours included, so the result can be merged into canonical
    form). ``write`` maps a block to its table row. A row is known by its space and first
    serial (unique in every block table), so blocks read ahead of a change and kept current
    by the changes since (gateway.reads) make a neighbourhood as well as rows just read."""

    def __init__(
        self,
        table: Table,
        space: str,
        blocks: list[Block[A]],
        write: Callable[[Block[A]], dict[str, Any]],
    ) -> None:
        self.space = space
        self._table = table
        self._write = write
        self.blocks = blocks

    @classmethod
    def read_around(
        cls,
        connection: Connection,
        table: Table,
        space: str,
        ranges: Sequence[Block[Any]],
        read: Callable[[Any], Block[A]],
        write: Callable[[Block[A]], dict[str, Any]],
    ) -> Neighbourhood[A]:
        """The neighbourhood of ``ranges``, read from the table (``read`` maps its rows)."""
        rows = rows_around(connection, table, space, ranges, 1)
        return cls(table, space, [read(row) for row in rows.values()], write)

    def overlapping(self, ranges: Sequence[Block[Any]]) -> list[Block[A]]:
        return overlapping_blocks(self.blocks, ranges)

    def replace(self, connection: Connection, blocks: Sequence[Block[A]]) -> None:
        """Replace the rows read with ``blocks`` (the same serials, rearranged)."""
        delete_rows(connection, self._table, self.space, self.firsts())
        insert_rows(connection, self._table, self.rows(blocks))

    def firsts(self) -> list[int]:
        """The stored first serials of the blocks read: the keys their rows are deleted by."""
        return [to_db(block.serial_first) for block in self.blocks]

    def rows(self, blocks: Sequence[Block[A]]) -> list[dict[str, Any]]:
        """The table rows of ``blocks``."""
        return [self._write(block) for block in blocks]


def delete_rows(connection: Connection, table: Table, space: str, firsts: Sequence[int]) -> None:
    """Delete the rows of ``space`` with these stored first serials: a few, one statement
    each on the driver; many (a transfer of a thousand blocks, a batch's changes), in one
    statement rather than a round trip to PostgreSQL per row. An insert of several rows is
    always one statement there (``Direct.run``)."""
    if len(firsts) > FEW_ROWS:
        connection.execute(_delete_rows(table), {"space": space, "firsts": list(firsts)})
    elif firsts:
        keys = [{"space": space, "first": first} for first in firsts]
        _delete_row(table).run(connection, keys)


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    _insert_rows(table).run(connection, rows)
