"""The AEF workbook at volume: writing a Party's Table 3 with N action rows (openpyxl's
write-only mode), and checking it cell by cell (read-only mode, rows streamed). Each runs
in a process of its own, whose peak resident memory is reported, so that a cost growing with
the rows would show; the target: 100,000 rows in under 30 s, memory flat in the rows."""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from article6.aef.check import check_workbook
from article6.aef.workbook import write_workbook

TARGET_SECONDS = 30.0


@dataclass(frozen=True)
class Volume:
    rows: int
    write_seconds: float
    write_peak_mib: float
    check_seconds: float
    check_peak_mib: float
    findings: int


def action_rows(count: int) -> Iterator[dict[str, Any]]:
    """``count`` valid transfer rows of 10 units each, generated as they are written."""
    for number in range(count):
        first = 10 * number + 1
        yield {
            "date": date(2026, 1 + number % 12, 1 + number % 28), "action_type": "Transfer",
            "cooperative_approach": "CA0001", "authorization_id": "GHA-2026-001",
            "first_transferring_party": "GHA", "registry": "GHA01",
            "first_id": f"CA0001-GHA01-GHA-{first}-2024",
            "last_id": f"CA0001-GHA01-GHA-{first + 9}-2024", "metric": "GHG", "quantity": 10,
            "vintage": 2024, "transferring_party": "GHA", "acquiring_party": "CHE",
        }  # fmt: skip


def _write(path: Path, count: int) -> tuple[float, float]:
    _reset_peak()
    started = time.perf_counter()
    write_workbook(path, {"actions": action_rows(count)})
    return time.perf_counter() - started, _peak_mib()


def _check(path: Path) -> tuple[float, float, int]:
    _reset_peak()
    started = time.perf_counter()
    found = len(check_workbook(path))
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
    """Write then check ``count`` rows, each in a fresh process (its own peak memory)."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="a6-aef-") as folder:
        path = Path(folder) / "aef.xlsx"
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            write_seconds, write_peak = pool.submit(_write, path, count).result()
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            check_seconds, check_peak, found = pool.submit(_check, path).result()
    return Volume(count, write_seconds, write_peak, check_seconds, check_peak, found)


def table(volumes: list[Volume]) -> list[str]:
    lines = [
        "| AEF workbook, Table 3 rows | write | peak memory (process) | check cell by cell "
        "| peak memory (process) | findings | target |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for v in volumes:
        met = "met" if v.write_seconds < TARGET_SECONDS else "MISSED"
        lines.append(
            f"| {v.rows:,} | {v.write_seconds:.1f} s | {v.write_peak_mib:.1f} MiB "
            f"| {v.check_seconds:.1f} s | {v.check_peak_mib:.1f} MiB | {v.findings} "
            f"| write < {TARGET_SECONDS:.0f} s: {met} |"
        )
    return lines
