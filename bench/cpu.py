"""CPU time of the benchmark's processes, to say where a figure's time went.

Read from ``/proc/<pid>/stat`` (user + system time); on a system without it the figures are
simply absent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    user, system = int(fields[11]), int(fields[12])  # utime and stime, after the name
    return (user + system) / _TICKS


def snapshot(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process (this one as "client")."""
    found = {name: cpu_seconds(pid) for name, pid in {**pids, "client": os.getpid()}.items()}
    return {name: seconds for name, seconds in found.items() if seconds is not None}


def per_item_ms(before: Mapping[str, float], after: Mapping[str, float], items: int) -> str:
    """'hub 3.1, GHA01 1.2, ...' ms of CPU per item, from two snapshots."""
    return ", ".join(
        f"{name} {1000 * (after[name] - before[name]) / items:.1f}"
        for name in after
        if name in before
    )
