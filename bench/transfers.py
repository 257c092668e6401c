"""Complete external transfers, GHA01 to CHE01, with the hub and both registries as processes.

A transfer is complete when both registries have applied it: the proposal and the hub's
receipt, the acquisition request and CHE01's decision in its delivery receipt, the hub's
completion, and the status notices to both registries, each applied in their books and
answered with a receipt carrying that registry's leg confirmation, which the hub compares.
Every message is signed and verified, every step committed durably before its answer leaves;
messages travel in batches (``Hub.SubmitBatch``, ``Registry.DeliverBatch``), as in service.

GHA01's fast sender (``bench.sender``) proposes; the figures:

- **rate**: transfers proposed closed-loop, timed until both registries applied the last;
- **latency** at half that rate, open-loop: from a transfer's due instant to the later of
  the two registries' completion (their books' own timestamps), and where it went: to the
  hub's record of the proposal, to its completion there, to both books (the hub's history);
- **block size**: the latency of transfers of one block of 10^9 units against one unit;
- **1,000 blocks**: the latency of one transfer of 1,000 separate blocks.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from article6.model import Status
from article6.v1 import transaction_pb2
from bench import cpu
from bench.load import (
    CONCURRENCY,
    LATENCY_SECONDS,
    Latencies,
    Run,
    Throughput,
    closed_loop,
    open_loop,
    percentile,
)
from bench.network import Bench, bench_for, running

T = transaction_pb2
SOURCE, TARGET = "GHA01", "CHE01"
SIZES = {"1 unit": 1, "10^9 units": 10**9}
BLOCKS = 1_000


@dataclass(frozen=True)
class Stages:
    """Where a paced transfer's time went, as (p50, p99) in ms of each stage: from its due
    instant to the hub's record of the proposal; then to the hub's completion (the
    acquisition request, the acquirer's decision in its receipt); then to the later of the
    two registries' books applying the status notices."""

    proposal: tuple[float, float]
    decision: tuple[float, float]
    notices: tuple[float, float]

    @classmethod
    def of(cls, spans: list[tuple[float, float, float]]) -> Stages:
        """From each transfer's three spans, in seconds."""
        columns = [[1000 * span[i] for span in spans] for i in range(3)]
        ends = [(statistics.median(c), percentile(c, 0.99)) for c in columns]
        return cls(*ends)

    @classmethod
    def median(cls, runs: list[Stages]) -> Stages:
        """Each figure's median over repeated runs."""
        fields = ("proposal", "decision", "notices")
        return cls(*(
            (statistics.median(getattr(r, f)[0] for r in runs),
             statistics.median(getattr(r, f)[1] for r in runs))
            for f in fields
        ))  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    """Median latency (ms) of paced transfers by block size, and of a 1,000-block one."""

    by_size: dict[str, float]
    thousand_blocks_ms: float


class Transfers:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.sender = bench.senders[SOURCE]
        self.units = bench.units[SOURCE]
        self.next_serial = 1
        self.cpu_ms = ""  # CPU per transfer by process, in the last rate run
        self.stages: list[Stages] = []  # of each paced run at half rate

    async def prepare(self, count: int, size: int = 1, blocks: int = 1) -> list[bytes]:
        """Issue units for ``count`` transfers of ``blocks`` separate blocks of ``size``
        units each, and sign the transfers (the clock has not started)."""
        plans, first = [], self.next_serial
        for _ in range(count):
            plan = []
            for _ in range(blocks):
                plan.append(self.units.block(self.next_serial, self.next_serial + size - 1))
                self.next_serial += size + (1 if blocks > 1 else 0)  # a gap keeps blocks apart
            plans.append(plan)
        issued = [block for plan in plans for block in plan]
        if blocks == 1:  # one run of serials: one block
            issued = [self.units.block(first, self.next_serial - 1)]
        for start in range(0, len(issued), 5_000):
            await self.bench.issue(SOURCE, issued[start : start + 5_000])
        acquiring = (TARGET, self.bench.units[TARGET].account)
        kind = T.TRANSACTION_TYPE_EXTERNAL_TRANSFER
        return [self.sender.proposal(kind, self.units, plan, acquiring) for plan in plans]

    async def propose(self, raw: bytes) -> str:
        return (await self.sender.propose(raw)).transaction_id

    async def completed(self, ids: list[str], timeout: float = 600) -> dict[str, datetime]:
        """When each transfer was complete (both registries applied it), waiting for all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            source = self.bench.registry_rows(SOURCE, ids)
            target = self.bench.registry_rows(TARGET, ids)
            if len(source) == len(target) == len(ids):
                return {i: max(source[i], target[i]).replace(tzinfo=UTC) for i in ids}
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{len(ids)} transfers not all complete within {timeout} s")

    async def rate(self, count: int) -> Throughput:
        raws = await self.prepare(count)
        ids: list[str] = [""] * count

        async def one(index: int) -> None:
            ids[index] = await self.propose(raws[index])

        before = cpu.snapshot(self.bench.pids())
        started = time.perf_counter()
        await closed_loop(one, count, CONCURRENCY)
        await self.completed(ids)
        self.cpu_ms = cpu.per_item_ms(before, cpu.snapshot(self.bench.pids()), count)
        return Throughput(count, time.perf_counter() - started)

    async def paced(
        self, count: int, rate: float, size: int = 1, blocks: int = 1, stages: bool = False
    ) -> Latencies:
        """Latencies at ``rate``; with ``stages``, where they went is kept in ``self.stages``."""
        raws = await self.prepare(count, size, blocks)
        due: dict[str, datetime] = {}

        async def one(index: int) -> None:
            instant = datetime.now(UTC)  # open_loop calls at the due instant
            due[await self.propose(raws[index])] = instant

        await open_loop(one, count, rate)
        done = await self.completed(list(due))
        if stages:
            self.stages.append(Stages.of(self._spans(due, done)))
        return Latencies(rate, tuple((done[i] - due[i]).total_seconds() for i in due))

    def _spans(
        self, due: dict[str, datetime], done: dict[str, datetime]
    ) -> list[tuple[float, float, float]]:
        history = self.bench.hub_history(list(due))
        proposed, completed = Status.PROPOSED.value, Status.COMPLETED.value
        spans = []
        for transaction_id, instant in due.items():
            at = history[transaction_id]
            spans.append((
                (at[proposed] - instant).total_seconds(),
                (at[completed] - at[proposed]).total_seconds(),
                (done[transaction_id] - at[completed]).total_seconds(),
            ))  # fmt: skip
        return spans


async def run(
    database: str, count: int, repeats: int, per_size: int = 40
) -> tuple[list[Run], Sizes, str, Stages]:
    """The runs, the block-size figures, the CPU per transfer by process (last run), and
    where a transfer's time went at half rate (medians over the runs)."""
    with running((SOURCE, TARGET), database) as network:
        bench = bench_for(network)
        try:
            transfers = Transfers(bench)
            await transfers.rate(min(100, count))  # warm-up
            runs = []
            for _ in range(repeats):
                throughput = await transfers.rate(count)
                half = throughput.per_second / 2
                paced = max(50, int(half * LATENCY_SECONDS))
                runs.append(Run(throughput, await transfers.paced(paced, half, stages=True)))
            cpu_ms, stages = transfers.cpu_ms, Stages.median(transfers.stages)
            return runs, await _sizes(transfers, repeats, per_size), cpu_ms, stages
        finally:
            await bench.close()


async def _sizes(transfers: Transfers, repeats: int, count: int) -> Sizes:
    """``count`` transfers of each size per repeat, paced at a gentle 10/s so that each figure
    is a transfer's own cost, not queueing; and ``repeats`` transfers of 1,000 blocks."""
    by_size: dict[str, list[float]] = {}
    for _ in range(repeats):  # interleaved, so drift in the machine's load touches both alike
        for name, size in SIZES.items():
            latencies = await transfers.paced(count, 10.0, size=size)
            by_size.setdefault(name, []).append(latencies.p50_ms)
    thousand = [
        (await transfers.paced(1, 1.0, size=10, blocks=BLOCKS)).p50_ms for _ in range(repeats)
    ]
    return Sizes(
        {name: statistics.median(values) for name, values in by_size.items()},
        statistics.median(thousand),
    )
