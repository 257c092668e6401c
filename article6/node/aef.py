"""A registry's own AEF prefill: its completed transactions, from its books, for
``article6.aef.prefill``; and the ``aef`` command's output (workbook, or one table as CSV or
JSON), shared by every registry built on ``article6.node``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

from sqlalchemy import Connection

from article6.aef.prefill import Books, Completed, PartyOf, Tables, registry_party
from article6.aef.template import template
from article6.aef.workbook import render, write_workbook
from article6.node import store
from article6.v1 import transaction_pb2
from article6.wire import transaction_spec

PROGRESS_EVERY = 20_000  # transactions read between two progress lines of an export
Say = Callable[[str], None]


def completed(rows: Iterable[tuple[bytes, datetime]]) -> Iterator[Completed]:
    """Completed transactions from their stored bodies and completion times (UTC)."""
    for body, at in rows:
        message = transaction_pb2.Transaction.FromString(body)
        yield Completed(transaction_spec(message), at.replace(tzinfo=UTC), message)


def party_registry_books(connection: Connection, here: str, say: Say | None = None) -> Books:
    """A Party registry's books: every account of its own belongs to its Party."""

    def party_of(registry: str, account_id: str) -> str:
        return registry_party(here) if registry == here else registry_party(registry)

    return books(connection, party_of, f"{here} (Party registry)", say)


def books(
    connection: Connection, party_of: PartyOf, prepared_by: str, say: Say | None = None
) -> Books:
    """The registry's completed transactions as the prefill reads them; with ``say``, each
    pass over them reports its progress (a command line's stderr)."""
    passes = count(1)

    def read() -> Iterator[Completed]:
        transactions = completed(store.completed_transactions(connection))
        return transactions if say is None else _reported(transactions, next(passes), say)

    return Books(party_of, read, prepared_by)


def _reported(
    items: Iterator[Completed], number: int, say: Say
) -> Generator[Completed, None, None]:
    """``items``, saying every PROGRESS_EVERY how many were read, and at the end (or when the
    reader stops early: a year's pass ends at its last transaction) how many in all."""
    started, read = time.monotonic(), 0
    try:
        for read, item in enumerate(items, 1):
            if read % PROGRESS_EVERY == 0:
                say(f"AEF: pass {number} over the books, {read:,} transactions read "
                    f"({time.monotonic() - started:.1f} s)")  # fmt: skip
            yield item
    finally:
        say(f"AEF: pass {number} over the books done, {read:,} transactions read in "
            f"{time.monotonic() - started:.1f} s")  # fmt: skip


def add_aef_arguments(export: argparse.ArgumentParser) -> None:
    export.add_argument("--year", type=int, default=datetime.now(UTC).year)
    export.add_argument("--format", choices=["xlsx", "csv", "json"], default="xlsx")
    export.add_argument("--out", help="the workbook to write (default PARTY-YEAR-AEF.xlsx)")
    export.add_argument("--table", choices=[t.key for t in template().tables], default="actions",
                        help="with csv or json: the table to print")  # fmt: skip


def print_aef(args: argparse.Namespace, party: str, tables: Tables) -> int:
    """Write the workbook (and say where, with each table's rows), or print one table."""
    if args.format != "xlsx":
        print(render(tables[args.table], template().table(args.table), args.format), end="")
        return 0
    out = Path(args.out or f"{party}-{args.year}-AEF.xlsx")
    write_workbook(out, tables)
    counts = ", ".join(f"{table.sheet} {len(tables[table.key])}" for table in template().tables)
    print(f"{out}: {counts} rows")
    return 0
