"""``make bench``: run the benchmarks, print a table, and write bench/RESULTS.md.

    python -m bench [--repeats 3] [--echo 5000] [--single 1500] [--transfers 400]
                    [--paced 40] [--blocks 1000000] [--backlog 10000] [--aef-rows 100000]
                    [--databases sqlite,postgresql] [--output bench/RESULTS.md]
                    [--before COMMIT]

In one run on this machine: the echo baseline, single-registry transactions and complete
external transfers with the hub on each database, block-size invariance, delivery isolation
(bench/isolation.py), the AEF workbook at volume (bench/aef.py), and reconciliation; with
``--before COMMIT`` (``make bench BEFORE=COMMIT``), that commit's rates first, in the same
session, beside this code's (bench/before.py).
Figures are medians over repeated runs; the file records the machine and the command, so
that a figure is never quoted without them, and each target is marked met or missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from bench import aef, before, echo, isolation, reconciliation, single, transfers
from bench.load import Run
from bench.network import hub_database, postgres_reachable

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SINGLE_TARGET = 0.35  # x the echo rate
TRANSFER_RATE_TARGET, TRANSFER_P99_TARGET_MS = 500, 100
SIZE_TOLERANCE = 0.10
ISOLATION_RATE, ISOLATION_COUNT = 20.0, 200  # unrelated transfers a second, and how many


@dataclass(frozen=True)
class Row:
    name: str
    rate: float
    runs: Sequence[float]
    p50_ms: float
    p99_ms: float
    verdict: str


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _row(name: str, runs: Sequence[Run], verdict: str = "") -> Row:
    """Medians over runs: of the rates, and of each run's p50 and p99."""
    rates = [run.throughput.per_second for run in runs]
    return Row(
        name, statistics.median(rates), rates,
        statistics.median(run.latencies.p50_ms for run in runs),
        statistics.median(run.latencies.p99_ms for run in runs),
        verdict,
    )  # fmt: skip


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


@dataclass(frozen=True)
class Lines:
    """The rows of the tables after the main one."""

    sizes: list[str]
    cpu: list[str]
    stages: list[str]


async def _measure(args: argparse.Namespace) -> tuple[list[Row], Lines]:
    """The rows of the main table, and of the tables after it."""
    rows = [_row("echo baseline (grpc.aio unary, mTLS)", await echo.run(args.echo, args.repeats))]
    floor = rows[0].rate
    size_lines: list[str] = []
    notes: list[str] = []
    stage_lines: list[str] = []
    for kind in args.databases:
        with hub_database(kind) as url:
            runs, cpu_ms = await single.run(url, args.single, args.repeats)
        row = _row(f"single-registry transactions, hub on {kind}", runs)
        notes.append(f"| single-registry transaction, hub on {kind} | {cpu_ms} |")
        verdict = f"{row.rate / floor:.2f} x echo, target {SINGLE_TARGET} x: "
        rows.append(replace(row, verdict=verdict + _met(row.rate >= SINGLE_TARGET * floor)))
        with hub_database(kind) as url:
            runs, sizes, cpu_ms, stages = await transfers.run(
                url, args.transfers, args.repeats, args.paced
            )
        stage_lines.append(_stages_line(kind, stages))
        notes.append(f"| complete external transfer, hub on {kind} | {cpu_ms} |")
        row = _row(f"complete external transfers, hub on {kind}", runs)
        ok = row.rate >= TRANSFER_RATE_TARGET and row.p99_ms < TRANSFER_P99_TARGET_MS
        verdict = f"target {TRANSFER_RATE_TARGET}/s, p99 < {TRANSFER_P99_TARGET_MS} ms: "
        rows.append(replace(row, verdict=verdict + _met(ok)))
        size_lines.append(_sizes_line(kind, sizes))
    return rows, Lines(size_lines, notes, stage_lines)


def _stages_line(kind: str, stages: transfers.Stages) -> str:
    spans = (stages.proposal, stages.decision, stages.notices)
    figures = " | ".join(f"{p50:.1f} / {p99:.1f} ms" for p50, p99 in spans)
    return f"| hub on {kind} | {figures} |"


def _sizes_line(kind: str, sizes: transfers.Sizes) -> str:
    one, billion = sizes.by_size["1 unit"], sizes.by_size["10^9 units"]
    ratio = billion / one
    return (
        f"| hub on {kind} | {one:.1f} ms | {billion:.1f} ms | {ratio:.2f} "
        f"({_met(abs(ratio - 1) <= SIZE_TOLERANCE)}) | {sizes.thousand_blocks_ms:.0f} ms |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--echo", type=int, default=5000, help="echo calls per run")
    parser.add_argument("--single", type=int, default=1500, help="transactions per run")
    parser.add_argument("--transfers", type=int, default=400, help="transfers per run")
    parser.add_argument("--paced", type=int, default=40,
                        help="transfers of each block size per repeat")  # fmt: skip
    parser.add_argument("--blocks", type=int, default=1_000_000, help="reconciliation size")
    parser.add_argument("--aef-rows", type=int, default=100_000,
                        help="AEF Table 3 rows to write and check (and a tenth of it)")  # fmt: skip
    parser.add_argument("--backlog", type=int, default=10_000,
                        help="messages waiting for the silent registry (isolation)")  # fmt: skip
    parser.add_argument("--databases", default="sqlite,postgresql",
                        type=lambda text: text.split(","))  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write")
    parser.add_argument("--before", metavar="COMMIT",
                        help="first run the rate benchmarks of this earlier commit "
                             "(bench/before.py), and show its rates beside these")  # fmt: skip
    args = parser.parse_args(argv)
    skipped = ""
    if "postgresql" in args.databases and not postgres_reachable():
        args.databases.remove("postgresql")
        skipped = "- PostgreSQL: no server at 127.0.0.1:5432, so its rows were skipped\n"
        print(skipped.strip("- \n"))
    earlier = None
    if args.before:
        earlier = before.measure(args.before, [
            "--repeats", str(args.repeats), "--echo", str(args.echo), "--single",
            str(args.single), "--transfers", str(args.transfers), "--databases",
            ",".join(args.databases),
        ])  # fmt: skip
    rows, lines = asyncio.run(_measure(args))
    compared = [] if earlier is None else ["", *before.table(earlier, {
        r.name: (f"{r.rate:,.0f} /s", f"{r.p99_ms:.1f} ms") for r in rows
    })]  # fmt: skip
    table = [
        "| benchmark | rate (median) | runs | p50 at half rate | p99 at half rate | target |",
        "|---|---:|---|---:|---:|---|",
        *(
            f"| {r.name} | {r.rate:,.0f} /s | {', '.join(f'{x:,.0f}' for x in r.runs)} | "
            f"{r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms | {r.verdict} |"
            for r in rows
        ),
        "",
        "| block size (p50 of a transfer, paced at 10/s) | 1 unit | 10^9 units | ratio "
        "(target within 10%) | one transfer of 1,000 blocks |",
        "|---|---:|---:|---|---:|",
        *lines.sizes,
        "",
        "| where a complete transfer's time went at half rate (p50 / p99) | due to the hub's "
        "record of the proposal | to its completion at the hub (request, decision) | to the "
        "notices applied in both books |",
        "|---|---:|---:|---:|",
        *lines.stages,
        "",
        "| CPU per item in the last closed-loop run | ms by process |",
        "|---|---|",
        *lines.cpu,
        *compared,
        "",
        *isolation.table(
            isolation.measure(args.backlog, ISOLATION_COUNT, ISOLATION_RATE), ISOLATION_RATE
        ),
        "",
        *aef.table([aef.measure(max(1, args.aef_rows // 10)), aef.measure(args.aef_rows)]),
        "",
        *_reconciliation_table(args.blocks),
    ]
    print("\n".join(table))
    command = "make bench  (python -m bench " + " ".join(argv or sys.argv[1:]) + ")"
    args.output.write_text(
        "# Benchmark results\n\n"
        f"- machine: {machine()}\n"
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
        f"- command: `{command.replace(' )', ')')}`\n"
        f"- repeats: {args.repeats}; rates are medians over runs, latencies the median of "
        "each run's p50 and p99\n"
        "- every process (load client, hub, registries, PostgreSQL) runs on this machine\n"
        "- what each row measures: bench/echo.py, bench/single.py, bench/transfers.py, "
        f"bench/isolation.py, bench/aef.py, bench/reconciliation.py\n{skipped}\n"
        + "\n".join(table)
        + "\n"
    )
    print(f"\nwritten to {args.output}")
    return 0


def _reconciliation_table(blocks: int) -> list[str]:
    table = [
        f"| reconciliation of {blocks:,} blocks | time (target < 10 s) | proposals held "
        "(target < 1 s) | round trips | bytes | blocks found |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in reconciliation.run(blocks):
        found = str(run.differing)
        if run.differing:
            met = run.round_trips <= 25 and run.bytes_exchanged < 1_000_000
            found += f" (target {_met(met)})"
        table.append(
            f"| {run.what} | {run.seconds:.1f} s ({_met(run.seconds < 10)}) | "
            f"{run.held_seconds * 1000:.0f} ms ({_met(run.held_seconds < 1)}) | "
            f"{run.round_trips} | {run.bytes_exchanged:,} | {found} |"
        )
    return table


if __name__ == "__main__":
    sys.exit(main())
