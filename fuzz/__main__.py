"""``python -m fuzz [--inputs N] [--seed S]``: fuzz the hub's Hub service in process.

Runs on a SQLite file in /dev/shm when there is one (the logic is under test here, not the
disk), or on ``--database URL``. Prints the figures; exits 1 on any crash, refusal without a
code or state change by a refused input. A hang ends the process with a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
from pathlib import Path

from fuzz.run import Stats, fuzz


def report(seed: int, stats: Stats) -> str:
    top = ", ".join(f"{code}x{count:,}" for code, count in stats.refusals.most_common(12))
    rejected = ", ".join(f"{code}x{count:,}" for code, count in stats.rejected.most_common(8))
    kinds = ", ".join(f"{how} {count:,}" for how, count in sorted(stats.mutators.items()))
    lines = [
        f"seed                 {seed}",
        f"machine              {platform.node()}, Python {platform.python_version()}",
        f"inputs               {stats.inputs:,} in {stats.seconds:,.0f} s "
        f"({stats.inputs / max(stats.seconds, 1e-9):,.0f}/s)",
        f"mutations            {kinds}",
        f"refused (codexn)     {top}",
        f"rejected receipts    {sum(stats.rejected.values()):,} codes: {rejected}",
        f"accepted             {stats.accepted:,} (still-valid mutants), "
        f"status answers {stats.answered:,}",
        f"state windows        {stats.windows:,} checked (every 50 inputs)",
        f"slowest input        {stats.slowest_seconds * 1000:,.1f} ms",
        f"crashes              {len(stats.crashes)}",
        f"result               {'PASS' if not stats.failures else 'FAIL'}",
    ]
    lines += [f"  FAILED: {failure}" for failure in stats.failures[:20]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--inputs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", help="a SQLAlchemy URL (default: SQLite in /dev/shm)")
    parser.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"))
    args = parser.parse_args(argv)
    shm = Path("/dev/shm")  # noqa: S108 (a private temporary folder is made inside it)
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as folder:
        url = args.database or f"sqlite:///{folder}/fuzz.db"
        stats = asyncio.run(fuzz(args.inputs, args.seed, url, args.crashes))
    print(report(args.seed, stats))
    return 0 if not stats.failures else 1


if __name__ == "__main__":
    sys.exit(main())
