"""The AEF at volume, from the hub's ledger: a Party with N acquisitions (N completed first
transfers from GHA01 to CHE01, 10 ITMOs each), exported as its workbook (the ledger read, the
five tables made, Table 4 replayed, the workbook written in openpyxl's write-only mode); that
workbook checked cell by cell (read-only mode, rows streamed); and checked for consistency
against the same ledger. Each runs in a process of its own, whose peak resident memory is
reported, so that a cost growing with the rows would show. The target: an export of 100,000
action rows in under 30 s, memory flat in the rows."""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from article6.aef.check import check_workbook
from article6.aef.consistency import check_consistency
from article6.aef.workbook import write_workbook
from article6.identifiers import format_account_id
from article6.model import Status
from article6.v1 import transaction_pb2, units_pb2
from gateway import aef
from gateway.storage.database import Database
from gateway.storage.schema import transactions

TARGET_SECONDS = 30.0
PARTIES = {"GHA01": "GHA", "CHE01": "CHE"}
YEAR = 2026
T = transaction_pb2


@dataclass(frozen=True)
class Volume:
    rows: int
    export_seconds: float
    export_peak_mib: float
    check_seconds: float
    check_peak_mib: float
    findings: int
    consistency_seconds: float
    consistency_peak_mib: float
    inconsistencies: int


def first_transfers(count: int) -> Iterator[dict[str, Any]]:
    """``count`` completed first transfers of 10 ITMOs each, spread over the year, as the
    hub's transactions table holds them."""
    start = datetime(YEAR, 1, 1, tzinfo=UTC)
    source, target = format_account_id("GHA01", 1001), format_account_id("CHE01", 1001)
    for number in range(count):
        first = 10 * number + 1
        unit = units_pb2.UnitBlock(
            serial_first=first, serial_last=first + 9, originating_registry="GHA01",
            vintage=2024, cooperative_approach="CA0001", first_transferring_party="GHA",
            authorization_id="GHA-2026-001", purpose=units_pb2.PURPOSE_NDC,
            unit_kind=units_pb2.UNIT_KIND_MITIGATION_OUTCOME, state=units_pb2.UNIT_STATE_HELD,
        )  # fmt: skip
        message = T.Transaction(
            transaction_id=f"GHA01-{number + 1}", type=T.TRANSACTION_TYPE_FIRST_TRANSFER,
            transferring_registry="GHA01", transferring_account=source,
            acquiring_registry="CHE01", acquiring_account=target, blocks=[unit], quantity=10,
            first_transfer=T.FirstTransfer(first_transferring_party="GHA",
                                           trigger=T.FIRST_TRANSFER_TRIGGER_INTERNATIONAL_TRANSFER),
        )  # fmt: skip
        at = start + timedelta(seconds=number * 300)  # 100,000 of them fill the year
        yield {
            "transaction_id": message.transaction_id, "type": message.type, "proposer": "GHA01",
            "transferring_registry": "GHA01", "acquiring_registry": "CHE01", "quantity": 10,
            "status": Status.COMPLETED.value, "results": "[]",
            "body": message.SerializeToString(deterministic=True), "proposed_at": at,
            "status_at": at, "respond_by": None,
        }  # fmt: skip


def ledger(path: Path, count: int) -> str:
    """A hub database whose ledger holds ``count`` completed first transfers to CHE01."""
    url = f"sqlite:///{path}"
    database = Database(url)
    try:
        database.migrate()
        rows = first_transfers(count)
        with database.engine.begin() as connection:
            while batch := [row for _, row in zip(range(10_000), rows, strict=False)]:
                connection.execute(insert(transactions), batch)
    finally:
        database.close()
    return url


def _export(url: str, path: Path) -> tuple[float, float]:
    _reset_peak()
    started = time.perf_counter()
    database = Database(url)
    try:  # written while the ledger is open: the actions are read as they are written
        database.read_now(lambda c: write_workbook(path, aef.export(c, PARTIES, "CHE", YEAR)))
    finally:
        database.close()
    return time.perf_counter() - started, _peak_mib()


def _check(path: Path) -> tuple[float, float, int]:
    _reset_peak()
    started = time.perf_counter()
    found = len(check_workbook(path))
    return time.perf_counter() - started, _peak_mib(), found


def _consistency(url: str, path: Path) -> tuple[float, float, int]:
    _reset_peak()
    started = time.perf_counter()
    database = Database(url)
    try:
        books = database.read_now(lambda c: aef.ledger(c, PARTIES, "CHE", YEAR))
    finally:
        database.close()
    found = len(check_consistency(path, books).found)
    return time.perf_counter() - started, _peak_mib(), found


STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _reset_peak() -> None:
    """Start the peak over: a process keeps the high-water mark of the one that forked it
    (across exec too), which would hide this process's own (Linux: ``clear_refs`` 5)."""
    if CLEAR_REFS.exists():
        CLEAR_REFS.write_text("5")


def _peak_mib() -> float:
    """This process's peak resident memory since ``_reset_peak`` (VmHWM), in MiB."""
    if STATUS.exists():
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(count: int) -> Volume:
    """Export, check and check for consistency ``count`` rows, each in a fresh process."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="a6-aef-") as folder:
        url = ledger(Path(folder) / "hub.db", count)
        path = Path(folder) / "aef.xlsx"
        figures: list[Any] = []
        for work, arguments in ((_export, (url, path)), (_check, (path,)),
                                (_consistency, (url, path))):  # fmt: skip
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                figures.extend(pool.submit(work, *arguments).result())
    return Volume(count, *figures)


def table(volumes: list[Volume]) -> list[str]:
    lines = [
        "| AEF from the hub's ledger, Table 3 rows | export (read, tables, write) | peak memory "
        "| check cell by cell | peak memory | findings | consistency check | peak memory "
        "| inconsistencies | target |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for v in volumes:
        met = "met" if v.export_seconds < TARGET_SECONDS else "MISSED"
        lines.append(
            f"| {v.rows:,} | {v.export_seconds:.1f} s | {v.export_peak_mib:.1f} MiB "
            f"| {v.check_seconds:.1f} s | {v.check_peak_mib:.1f} MiB | {v.findings} "
            f"| {v.consistency_seconds:.1f} s | {v.consistency_peak_mib:.1f} MiB "
            f"| {v.inconsistencies} | export < {TARGET_SECONDS:.0f} s: {met} |"
        )
    return lines
