"""The fuzzing loop: seeded mutants of valid requests into the hub, every answer classified,
and the database fingerprinted every ``WINDOW`` inputs.

Pass criteria, over every input: no exception other than a numbered ``Refusal`` (a crash), no
input taking longer than ``HANG_SECONDS`` (the watchdog ends the process with tracebacks),
every refusal and every rejected receipt carries a catalogued code, a window of inputs that
were all refused changed nothing at all, and a window with no accepted input left the ledger,
its locks and the authorizations as they were.
"""

from __future__ import annotations

import faulthandler
import os
import random
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from article6.codes import Code
from fuzz.mutations import mutate
from fuzz.target import Answer, HubTarget

WINDOW = 50
HANG_SECONDS = 30.0
IDENTITIES = ["GHA01", "CHE01", "HUB", "XYZ01", ""]
_CODES = frozenset(code.value for code in Code)


@dataclass
class Stats:
    inputs: int = 0
    mutators: Counter[str] = field(default_factory=Counter)
    refusals: Counter[int] = field(default_factory=Counter)
    rejected: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    answered: int = 0  # status answers: read only
    crashes: list[str] = field(default_factory=list)
    uncoded: int = 0
    windows: int = 0
    state_changes: list[str] = field(default_factory=list)
    slowest_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def failures(self) -> list[str]:
        found = [*self.crashes, *self.state_changes]
        if self.uncoded:
            found.append(f"{self.uncoded} refusals without a catalogued code")
        return found


@dataclass
class _Window:
    wrote: bool = False  # some input got a receipt (recorded, so the inbox grew)
    accepted: bool = False


def _classify(stats: Stats, answer: Answer, window: _Window) -> None:
    if answer.code is not None:
        stats.refusals[answer.code.value] += 1
        return
    if answer.receipt is None:
        stats.answered += 1
        return
    window.wrote = True
    if answer.accepted:
        stats.accepted += 1
        window.accepted = True
        return
    codes = [result.code for result in answer.receipt.results]
    if not codes or any(code not in _CODES for code in codes):
        stats.uncoded += 1
    stats.rejected.update(codes)


class Watchdog(threading.Thread):
    """Ends the process with every thread's traceback when one input runs over ``limit``
    seconds (a hang). Setting ``started`` costs nothing, unlike re-arming faulthandler's own
    timer for each of a million inputs."""

    def __init__(self, limit: float) -> None:
        super().__init__(name="fuzz-watchdog", daemon=True)
        self.limit = limit
        self.started: float | None = None

    def run(self) -> None:
        while True:
            time.sleep(1.0)
            started = self.started
            if started is not None and time.perf_counter() - started > self.limit:
                print(f"HANG: an input ran over {self.limit} s", file=sys.stderr, flush=True)
                faulthandler.dump_traceback(all_threads=True)
                os._exit(2)


watchdog = Watchdog(HANG_SECONDS)


async def fuzz(inputs: int, seed: int, url: str, crashes: Path | None = None) -> Stats:
    rng = random.Random(seed)  # noqa: S311 (a replayable run, not a secret)
    target = HubTarget(url)
    stats, started = Stats(), time.perf_counter()
    if not watchdog.is_alive():
        watchdog.start()
    try:
        await target.prepare()
        before, window = target.fingerprint(), _Window()
        for index in range(inputs):
            await _one(rng, target, stats, window, index, crashes)
            if (index + 1) % WINDOW == 0:
                after = target.fingerprint()
                _check_window(stats, window, before, after, index)
                before, window = after, _Window()
    finally:
        target.close()
    stats.seconds = time.perf_counter() - started
    return stats


async def _one(
    rng: random.Random,
    target: HubTarget,
    stats: Stats,
    window: _Window,
    index: int,
    crashes: Path | None,
) -> None:
    rpc, sender, message = target.seed(rng.randrange(target.SEEDS))
    if rng.random() < 0.1:  # a message to the wrong RPC
        rpc = rng.choice(sorted(target.methods))
    identity = sender if rng.random() < 0.95 else rng.choice(IDENTITIES)
    mutant = mutate(rng, message, target.keys[sender])
    stats.inputs += 1
    stats.mutators[mutant.how] += 1
    started = time.perf_counter()
    watchdog.started = started
    try:
        answer = await target.feed(rpc, mutant.raw, identity)
    except Exception as error:  # any exception here is the finding
        stats.crashes.append(f"input {index} ({mutant.how} to {rpc}): {error!r} at {_where(error)}")
        if crashes is not None:
            crashes.mkdir(parents=True, exist_ok=True)
            (crashes / f"crash-{index}-{rpc}.bin").write_bytes(mutant.raw)
        return
    finally:
        watchdog.started = None
    stats.slowest_seconds = max(stats.slowest_seconds, time.perf_counter() - started)
    _classify(stats, answer, window)


def _where(error: Exception) -> str:
    """The innermost frame of the project's own code that the error passed through."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [frame for frame in frames if "/lib/python" not in frame.filename]
    frame = ours[-1] if ours else None
    return f"{Path(frame.filename).name}:{frame.lineno} {frame.name}" if frame else "?"


def _check_window(
    stats: Stats, window: _Window, before: tuple[object, ...], after: tuple[object, ...], at: int
) -> None:
    stats.windows += 1
    if not window.wrote and after != before:
        stats.state_changes.append(f"inputs up to {at}: all refused, yet the database changed")
    if not window.accepted and after[0] != before[0]:
        stats.state_changes.append(f"inputs up to {at}: none accepted, yet the ledger changed")
