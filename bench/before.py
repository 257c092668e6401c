"""The same rate benchmarks on an earlier commit, in the same session (``--before COMMIT``).

Figures from different days on a shared machine differ by a third, so a before-and-after
comparison is only worth its figures when both sides run back to back. The commit is cloned
from this repository into a temporary folder, installed into its own virtualenv (``make
install``), and its ``python -m bench`` run first with the same rate parameters (the other
parts made small: only its rate table is kept); RESULTS.md then shows its rates beside this
code's.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--blocks", "1000", "--aef-rows", "100", "--backlog", "100", "--paced", "4"]


@dataclass(frozen=True)
class Before:
    commit: str  # the short hash
    rates: dict[str, tuple[str, str]]  # benchmark name: (rate, p99 at half rate), as printed


def measure(commit: str, rate_arguments: list[str]) -> Before:
    """Run the benchmark of ``commit`` with ``rate_arguments`` (repeats, counts, databases)."""
    short = _run("git", "-C", str(ROOT), "rev-parse", "--short", commit).strip()
    with tempfile.TemporaryDirectory(prefix="a6-bench-before-") as folder:
        print(f"benchmarking {short} in {folder} first", file=sys.stderr)
        _run("git", "clone", "--quiet", str(ROOT), folder)
        _run("git", "-C", folder, "checkout", "--quiet", short)
        _run("make", "-C", folder, "install")
        output = Path(folder) / "before.md"
        _run(f"{folder}/.venv/bin/python", "-m", "bench", *rate_arguments, *SMALL,
             "--output", str(output), cwd=folder)  # fmt: skip
        return Before(short, rate_rows(output.read_text()))


def _run(*command: str, cwd: str | None = None) -> str:
    """Run a command of our own (git, make, the earlier commit's bench); its output."""
    done = subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)  # noqa: S603
    return done.stdout


def rate_rows(results: str) -> dict[str, tuple[str, str]]:
    """The first table of a RESULTS.md: each benchmark's rate and p99 at half rate."""
    rows: dict[str, tuple[str, str]] = {}
    lines = results.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| benchmark |"))
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = (cells[1], cells[4])
    return rows


def table(before: Before, after: dict[str, tuple[str, str]]) -> list[str]:
    """Both sides' rates and p99s, row by row, for the benchmarks both ran."""
    lines = [
        f"| before ({before.commit}) and after (this code), back to back | rate before | "
        "rate after | p99 at half rate before | after |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (rate, p99) in after.items():
        if name in before.rates:
            old_rate, old_p99 = before.rates[name]
            lines.append(f"| {name} | {old_rate} | {rate} | {old_p99} | {p99} |")
    return lines
