"""Hot statements run on the DBAPI connection itself, compiled once per dialect from Core.

SQLAlchemy's execution path (execution context, parameter and result objects) costs some 40 to
80 us a statement, several times what SQLite takes to run a small one; on the paths every
message takes, that was the largest single cost in every process (docs/ARCHITECTURE.md,
"Where the time goes"). ``Direct`` keeps the statement written in Core for both dialects and
the column types' own bind and result processing, and drops the rest.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Column, Connection, Dialect, Insert, String, Table, TypeDecorator, exc
from sqlalchemy.sql.expression import Executable

# More rows than this in one change go as one statement (an IN list for a DELETE): on
# PostgreSQL, one round trip instead of one a row. An INSERT of several rows is always one
# statement there (``Direct.run``).
FEW_ROWS = 8


@dataclass(frozen=True)
class _Bind:
    """Where one rendered parameter's value comes from: the caller's ``key``, or a constant
    the statement holds (a LIMIT, say), already processed."""

    key: str | None
    constant: Any
    process: Callable[[Any], Any] | None


class _Errors:
    """The driver's errors as SQLAlchemy raises them (a unique-key race is an
    ``IntegrityError`` whichever way the statement ran), with no parameters in the text. A
    class, not a generator context manager: it wraps every statement on the hot paths."""

    __slots__ = ("base", "sql")

    def __init__(self, dialect: Dialect, sql: str) -> None:
        self.base: type[Exception] = dialect.loaded_dbapi.Error
        self.sql = sql

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if isinstance(error, self.base):
            raise exc.DBAPIError.instance(
                self.sql, None, error, self.base, hide_parameters=True
            ) from error


@dataclass(frozen=True)
class _Prepared:
    sql: str
    binds: tuple[_Bind, ...]  # in the order the values are rendered
    names: tuple[str, ...] | None  # the rendered names (named style), None when positional
    row: type[tuple[Any, ...]] | None
    results: tuple[Callable[[Any], Any] | None, ...]
    errors: _Errors


class Direct:
    """A Core statement compiled once per dialect (and set of parameter names) and run on the
    DBAPI connection itself, inside the caller's SQL transaction. Only simple statements
    qualify: no expanding parameters, and every bound value given (no column defaults computed
    at execution), which ``_compile`` asserts. Rows come back as named tuples with the
    selected columns' keys.

    ``replan``: PostgreSQL plans the query afresh each time ``rows`` runs it, for a query
    whose best plan depends on its values (ids given as one array). psycopg prepares a
    statement run often, and the server may then keep one plan for any values, costed on the
    table as it was then: made on a small table, a scan of the whole table, kept as it
    grows."""

    def __init__(self, statement: Executable, replan: bool = False) -> None:
        self.statement = statement
        self.replan = replan
        self._prepared: dict[tuple[str, frozenset[str], int], _Prepared] = {}

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        prepared = self._prepare(connection.dialect, params)
        cursor = _cursor(connection)
        with prepared.errors:
            if self.replan and connection.dialect.name == "postgresql":
                cursor.execute(prepared.sql, _bound(prepared, params), prepare=False)
            else:
                cursor.execute(prepared.sql, _bound(prepared, params))
            fetched = cursor.fetchall()
        assert prepared.row is not None, "rows() of a statement that selects nothing"
        if any(prepared.results):
            fetched = [
                tuple(v if f is None else f(v) for f, v in zip(prepared.results, row, strict=True))
                for row in fetched
            ]
        return [prepared.row._make(row) for row in fetched]  # type: ignore[attr-defined]

    def tuples(
        self, connection: Connection, params: Mapping[str, Any], chunk: int = 10_000
    ) -> Iterator[tuple[Any, ...]]:
        """The selected rows as the driver gives them, ``chunk`` at a time: plain tuples in the
        selected columns' order, for reading many rows of columns that need no result
        processing (integers, strings)."""
        prepared = self._prepare(connection.dialect, params)
        assert not any(prepared.results), "tuples() of columns that need processing"
        cursor = _cursor(connection)
        with prepared.errors:
            cursor.execute(prepared.sql, _bound(prepared, params))
            while rows := cursor.fetchmany(chunk):
                yield from rows

    def run(
        self, connection: Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> int:
        """Execute (once, or once per mapping of a sequence); the rows changed. On PostgreSQL,
        an INSERT of several rows (a transfer of a thousand blocks, a batch's transactions) is
        one statement (``_unnest``); other statements of several rows go in one pipelined
        round trip, a statement a row."""
        batch: list[Mapping[str, Any]] = [params] if isinstance(params, Mapping) else list(params)
        if not batch:
            return 0
        if len(batch) > 1 and self._unnests(connection.dialect):
            return int(self._unnested(connection, batch, _UNNEST).rowcount)
        prepared = self._prepare(connection.dialect, batch[0])
        cursor = _cursor(connection)
        with prepared.errors:
            if len(batch) == 1:  # psycopg's executemany pipelines: dearer for a lone row
                cursor.execute(prepared.sql, _bound(prepared, batch[0]))
            else:
                cursor.executemany(prepared.sql, [_bound(prepared, p) for p in batch])
        return int(cursor.rowcount)

    def insert_all(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Execute an INSERT of each row (with the same keys); the new rows' integer primary
        keys, in order (PostgreSQL returns them; SQLite reports each). Several rows on
        PostgreSQL are one statement (``_unnest``)."""
        if not rows:
            return []
        if len(rows) > 1 and self._unnests(connection.dialect):
            returned = self._unnested(connection, rows, _UNNEST_RETURNING).fetchall()
            # Made in the rows' order (``_unnest``), so their ids rise in it.
            ids = sorted(int(row[0]) for row in returned)
        else:  # a lone row, or SQLite (in process): a statement a row
            prepared = self._prepare(connection.dialect, rows[0])
            cursor = _cursor(connection)
            ids = []
            with prepared.errors:
                for row in rows:
                    cursor.execute(prepared.sql, _bound(prepared, row))
                    ids.append(_new_id(cursor))
        assert len(ids) == len(rows), (len(ids), len(rows))
        return ids

    def _unnests(self, dialect: Dialect) -> bool:
        """An INSERT of several rows on PostgreSQL goes as one statement (``_unnest``), not a
        statement a row (psycopg's ``executemany``, which SQLAlchemy's own execution of an
        INSERT without RETURNING also comes to); SQLite, in process, takes them fastest from
        its own ``executemany``."""
        return dialect.name == "postgresql" and isinstance(self.statement, Insert)

    def _unnested(
        self, connection: Connection, rows: Sequence[Mapping[str, Any]], form: int
    ) -> Any:
        """Run ``_unnest``'s statement (``form``) for ``rows``: the cursor, for its count or
        the ids it returns."""
        prepared = self._prepare(connection.dialect, rows[0], form)
        cursor = _cursor(connection)
        with prepared.errors:
            cursor.execute(prepared.sql, _arrays(prepared, rows))
        return cursor

    def _prepare(self, dialect: Dialect, params: Mapping[str, Any], form: int = 0) -> _Prepared:
        key = (dialect.name, frozenset(params), form)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = _compile(self.statement, dialect, sorted(params))
            if form:
                assert isinstance(self.statement, Insert)
                prepared = _unnest(self.statement, dialect, prepared, form == _UNNEST_RETURNING)
            self._prepared[key] = prepared
        return prepared


def _compile(statement: Executable, dialect: Dialect, keys: list[str]) -> _Prepared:
    compiled = statement.compile(dialect=dialect, column_keys=keys)  # type: ignore[attr-defined]
    binds: dict[str, _Bind] = {}
    for bind, name in compiled.bind_names.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.key in keys:
            binds[name] = _Bind(bind.key, None, process)
            continue
        # A value SQLAlchemy would compute at execution (a column default) is not here.
        assert not bind.required, f"no value for {bind.key}: {compiled.string}"
        assert bind.callable is None, f"no value for {bind.key}: {compiled.string}"
        assert bind.value is not None, f"no value for {bind.key}: {compiled.string}"
        value = bind.value if process is None else process(bind.value)
        binds[name] = _Bind(None, value, None)
    row: type[tuple[Any, ...]] | None = None
    results: tuple[Callable[[Any], Any] | None, ...] = ()
    columns = getattr(statement, "selected_columns", None)
    if columns is not None and len(columns):
        row = namedtuple("Row", [column.key for column in columns])  # type: ignore[misc, no-redef]
        implementations = (column.type.dialect_impl(dialect) for column in columns)
        results = tuple(kind.result_processor(dialect, None) for kind in implementations)
    names = tuple(compiled.positiontup) if dialect.positional else tuple(binds)
    errors = _Errors(dialect, compiled.string)
    ordered = tuple(binds[name] for name in names)
    rendered = None if dialect.positional else names
    return _Prepared(compiled.string, ordered, rendered, row, results, errors)


def _unnest(statement: Insert, dialect: Dialect, single: _Prepared, returning: bool) -> _Prepared:
    """The INSERT of one row (``single``) as ``INSERT ... SELECT ... FROM unnest(...)``: each
    column's values are one array parameter, so a batch of any size is one statement, the
    same text each time (PostgreSQL prepares it once). A string array is TEXT[]: an explicit
    cast to VARCHAR(n)[] would cut an oversized value short, where the column's own
    assignment refuses it, as for a row inserted alone.

    ``returning``: the new rows' ids back. The rows are inserted in the batch's order (ORDER
    BY their place in it), so the table's sequence numbers them in that order, and the ids
    sorted are the rows' in order: SQLAlchemy's "insertmanyvalues" relies on the same
    (``Insert.returning(sort_by_parameter_order=True)``); RETURNING itself promises no order."""
    assert single.names is not None, "PostgreSQL's drivers take named parameters"
    table = statement.table
    assert isinstance(table, Table)
    preparer = dialect.identifier_preparer
    columns = [table.c[bind.key if bind.key is not None else name]
               for bind, name in zip(single.binds, single.names, strict=True)]  # fmt: skip
    arrays = ", ".join(
        f"%({name})s::{_element_type(column, dialect)}[]"
        for name, column in zip(single.names, columns, strict=True)
    )
    names = ", ".join(preparer.format_column(column) for column in columns)
    into = f"INSERT INTO {preparer.format_table(table)} ({names})"
    sql = f"{into} SELECT * FROM unnest({arrays})"  # noqa: S608 (our schema's names; values are parameters)
    if returning:
        key = table.autoincrement_column
        assert key is not None, f"{table.name}: ids back need a sequence-numbered key"
        places = ", ".join(f"c{i}" for i in range(len(columns)))
        rows = f"unnest({arrays}) WITH ORDINALITY AS u({places}, place)"
        back = preparer.quote(key.name)
        sql = f"{into} SELECT {places} FROM {rows} ORDER BY place RETURNING {back}"  # noqa: S608 (as above)
    return replace(single, sql=sql, errors=_Errors(dialect, sql))


_UNNEST, _UNNEST_RETURNING = 1, 2  # the forms of ``_unnest`` a ``Direct`` prepares


def _element_type(column: Column[Any], dialect: Dialect) -> str:
    impl = column.type.dialect_impl(dialect)
    if isinstance(impl, TypeDecorator):
        impl = impl.impl_instance
    return "TEXT" if isinstance(impl, String) else str(impl.compile(dialect=dialect))


def _arrays(prepared: _Prepared, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """One array of values a parameter, for ``_unnest``'s statement."""
    assert prepared.names is not None
    arrays: dict[str, list[Any]] = {}
    for name, bind in zip(prepared.names, prepared.binds, strict=True):
        if bind.key is None:
            arrays[name] = [bind.constant] * len(rows)
        elif bind.process is None:
            arrays[name] = [row[bind.key] for row in rows]
        else:
            arrays[name] = [bind.process(row[bind.key]) for row in rows]
    return arrays


def _bound(prepared: _Prepared, params: Mapping[str, Any]) -> Any:
    values = tuple(
        bind.constant if bind.key is None
        else params[bind.key] if bind.process is None
        else bind.process(params[bind.key])
        for bind in prepared.binds
    )  # fmt: skip
    return values if prepared.names is None else dict(zip(prepared.names, values, strict=True))


@contextmanager
def pipelined(connection: Connection) -> Iterator[None]:
    """Statements run on the driver inside the block go to PostgreSQL without waiting for one
    another's results (psycopg's pipeline mode), in one round trip until a result is read:
    for a few writes whose row counts nobody reads (``run`` returns -1 inside). An error
    surfaces by the block's end, as SQLAlchemy's. SQLite, in process, runs them as ever."""
    if connection.dialect.name != "postgresql":
        yield
        return
    driver = _cursor(connection).connection
    with _Errors(connection.dialect, "(a pipeline)"), driver.pipeline():
        yield


def _new_id(cursor: Any) -> int:
    returned = cursor.fetchone() if cursor.description else None
    return int(returned[0] if returned is not None else cursor.lastrowid)


def _cursor(connection: Connection) -> Any:
    # SQLite runs in autocommit mode under SQLAlchemy, which emits BEGIN itself when a
    # connection is first used: begin as it would, so that the statement never runs alone.
    if not connection.in_transaction():
        connection.begin()
    return connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
