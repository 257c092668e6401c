"""Delivery isolation: unrelated transfers while one registry is silent with a backlog.

The hub, GHA01, CHE01 and SGP01 run as processes. GHA01 -> CHE01 transfers are paced at
``rate`` a second and their latency measured, from due instant to both registries'
completion. Then SGP01's process is stopped and its port taken by a listener that accepts
connections and never answers (not even TLS), and SGP01's fast sender issues ``backlog``
one-unit blocks: each issuance's completion notice to SGP01 waits. The same paced run is
measured again, with that backlog waiting. The target: the p99 with the silent registry
within twice the p99 without.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from article6.limits import DEFAULT_RATE_LIMIT_PER_SECOND
from article6.v1 import transaction_pb2
from bench.load import Latencies
from bench.network import Bench, bench_for, running
from bench.transfers import Transfers
from demo.network import Network

T = transaction_pb2
SILENT = "SGP01"
CHUNK = 1_000  # proposals at once: within the hub's default rate limit's burst


@dataclass(frozen=True)
class Isolation:
    baseline: Latencies
    silent: Latencies
    backlog: int  # messages waiting for the silent registry when the silent run ended


@contextlib.contextmanager
def silent_listener(endpoint: str) -> Iterator[None]:
    """Accept TCP connections at ``endpoint`` and never say anything (on a thread of its
    own, so that it serves alike under a test's or a benchmark's event loop)."""
    host, _, port = endpoint.rpartition(":")
    listener = socket.create_server((host, int(port)), reuse_port=False)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, name="silent-listener", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join()
        listener.close()
        for connection in held:
            connection.close()


async def flood(bench: Bench, backlog: int) -> None:
    """SGP01's fast sender proposes ``backlog`` one-unit issuances, each answered by a
    completion notice to SGP01 (in chunks within the hub's default rate limit: a chunk
    starts once the bucket has refilled by one, however fast the hub took the last)."""
    sender, units = bench.senders[SILENT], bench.units[SILENT]
    serial = 1
    loop = asyncio.get_running_loop()
    due = loop.time()
    for start in range(0, backlog, CHUNK):
        await asyncio.sleep(max(0.0, due - loop.time()))
        due = loop.time() + CHUNK / DEFAULT_RATE_LIMIT_PER_SECOND
        raws = []
        for _ in range(min(CHUNK, backlog - start)):
            raws.append(
                sender.proposal(T.TRANSACTION_TYPE_ISSUANCE, units, [units.block(serial, serial)])
            )
            serial += 2  # apart: one block each
        await asyncio.gather(*(sender.propose(raw) for raw in raws))


def pending_to(network: Network, registry: str) -> int:
    """Messages waiting for ``registry`` in the hub's outbox (read from its SQLite file)."""
    query = "SELECT count(*) FROM outbox WHERE recipient = ? AND state = 'pending'"
    uri = f"file:{network.folder / 'hub.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return int(db.execute(query, (registry,)).fetchone()[0])


async def run(network: Network, backlog: int, count: int, rate: float) -> Isolation:
    """Both runs on one network, running with GHA01, CHE01 and SGP01."""
    bench = bench_for(network)
    transfers = Transfers(bench)
    try:
        await transfers.paced(20, rate)  # warm-up
        baseline = await transfers.paced(count, rate)
        network.stop(SILENT)
        with silent_listener(network.components[SILENT].endpoint):
            await flood(bench, backlog)
            silent = await transfers.paced(count, rate)
            waiting = pending_to(network, SILENT)
        return Isolation(baseline, silent, waiting)
    finally:
        await bench.close()


def measure(backlog: int, count: int, rate: float) -> Isolation:
    """A fresh network on SQLite for the two runs."""
    with running(("GHA01", "CHE01", SILENT), "hub.db") as network:
        return asyncio.run(run(network, backlog, count, rate))


def table(isolation: Isolation, rate: float) -> list[str]:
    base, silent = isolation.baseline.p99_ms, isolation.silent.p99_ms
    ok = silent <= 2 * base
    return [
        f"| delivery isolation (GHA01 -> CHE01 paced at {rate:.0f}/s, hub on sqlite) "
        "| p50 | p99 | target |",
        "|---|---:|---:|---|",
        f"| every registry answering | {isolation.baseline.p50_ms:.1f} ms | {base:.1f} ms | |",
        f"| {SILENT} silent, {isolation.backlog:,} messages waiting for it "
        f"| {isolation.silent.p50_ms:.1f} ms | {silent:.1f} ms "
        f"| p99 within 2 x: {silent / base:.2f} x ({'met' if ok else 'MISSED'}) |",
    ]
