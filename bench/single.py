"""Single-registry transactions through the hub: cancellations, each signed by the registry,
checked, durably committed (SQLite ``synchronous=FULL``, or PostgreSQL) and answered with a
signed receipt saying completed.

GHA01's fast sender (``bench.sender``) issues a run of serials, waits until GHA01's books hold
them, then cancels one unit at a time: closed-loop for the rate, then open-loop at half that
rate for p50/p99. The hub meanwhile delivers a status notice for each to GHA01, which applies
it and confirms its leg in its receipt: that work shares the machine, as it would in service.
"""

from __future__ import annotations

from article6.v1 import transaction_pb2
from bench import cpu
from bench.load import (
    CONCURRENCY,
    LATENCY_SECONDS,
    Run,
    closed_loop,
    open_loop,
)
from bench.network import Bench, bench_for, running

T = transaction_pb2
REGISTRY = "GHA01"


async def _cancellations(bench: Bench, first: int, count: int) -> list[bytes]:
    sender, units = bench.senders[REGISTRY], bench.units[REGISTRY]
    kind = T.TRANSACTION_TYPE_CANCELLATION
    return [sender.proposal(kind, units, [units.block(s, s)]) for s in range(first, first + count)]


async def _measure(bench: Bench, first: int, count: int) -> tuple[Run, int, str]:
    """A run, the next free serial, and the CPU per transaction by process."""
    sender = bench.senders[REGISTRY]
    raws = await _cancellations(bench, first, count)
    before = cpu.snapshot(bench.pids())
    throughput = await closed_loop(lambda i: sender.propose(raws[i]), count, CONCURRENCY)
    cpu_ms = cpu.per_item_ms(before, cpu.snapshot(bench.pids()), count)
    first += count
    rate = throughput.per_second / 2
    paced = max(50, int(rate * LATENCY_SECONDS))
    raws = await _cancellations(bench, first, paced)
    latencies = await open_loop(lambda i: sender.propose(raws[i]), paced, rate)
    return Run(throughput, latencies), first + paced, cpu_ms


async def run(database: str, count: int, repeats: int) -> tuple[list[Run], str]:
    """``repeats`` runs of ``count`` cancellations each, after a warm-up; and the CPU per
    transaction by process in the last run."""
    with running((REGISTRY,), database) as network:
        bench = bench_for(network)
        try:
            serials = 10 * count * (repeats + 1) + 100_000
            await bench.issue(REGISTRY, [bench.units[REGISTRY].block(1, serials)])
            _, first, cpu_ms = await _measure(bench, 1, min(200, count))  # warm-up
            runs = []
            for _ in range(repeats):
                measured, first, cpu_ms = await _measure(bench, first, count)
                runs.append(measured)
            return runs, cpu_ms
        finally:
            await bench.close()
