"""Load generation over any async call: closed-loop throughput and open-loop latency.

Throughput is measured closed-loop (a fixed number of calls in flight, each replaced as soon
as it returns), which finds the rate a server sustains. Latency is measured open-loop at a
fixed offered rate (half the measured throughput): every call is due at its own instant
whether or not earlier ones have returned, and its latency runs from that instant, so a
stalled server shows up in the tail instead of silently slowing the offered load.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

Call = Callable[[int], Awaitable[object]]  # the i-th call of a run
CONCURRENCY = 64  # calls in flight in a closed loop: every benchmark uses the same
LATENCY_SECONDS = 6  # the open-loop run's length at half the measured rate


@dataclass(frozen=True)
class Throughput:
    calls: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds


@dataclass(frozen=True)
class Latencies:
    offered_per_second: float
    seconds: tuple[float, ...]

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(self.seconds)

    @property
    def p99_ms(self) -> float:
        return 1000 * percentile(self.seconds, 0.99)


@dataclass(frozen=True)
class Run:
    """One repetition: the closed-loop rate, then latencies at half that rate."""

    throughput: Throughput
    latencies: Latencies


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: a value that was actually observed."""
    assert values
    assert 0 < fraction <= 1
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def closed_loop(call: Call, count: int, concurrency: int) -> Throughput:
    """Run calls 0..count-1 with ``concurrency`` in flight; the time from first to last."""
    indices = iter(range(count))

    async def worker() -> None:
        for index in indices:  # shared: each index is taken by exactly one worker
            await call(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return Throughput(count, time.perf_counter() - started)


async def open_loop(call: Call, count: int, rate: float) -> Latencies:
    """Start call i at ``i / rate`` seconds; each latency runs from its due instant."""
    assert rate > 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    latencies: list[float] = []

    async def timed(index: int, due: float) -> None:
        await call(index)
        latencies.append(loop.time() - due)

    tasks = []
    for index in range(count):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(index, due)))
    await asyncio.gather(*tasks)
    return Latencies(rate, tuple(latencies))
