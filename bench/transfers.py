"""Completed external transfers per second through the whole flow.

The hub and two reference Party registries run as separate processes on loopback (gRPC,
mutual TLS, SQLite with synchronous=FULL). GHA01 issues one block, then N transfers of
distinct 10-unit ranges to CHE01 are queued in GHA01's own outbox in one go (as a registry
operator's batch would be). The clock runs from the moment they are queued until both
registries have applied every completion; every transfer takes all its legs: proposal and
hub receipt, acquisition request and CHE01's decision, completion notices to both registries.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from article6.blocks import serial_range
from article6.model import Status, TransactionType
from article6.node import store
from article6.node.config import load_config
from article6.node.engine import Proposal
from article6.node.server import build_engine
from demo.network import Network
from party_registry_stub import accounts


@dataclass(frozen=True)
class Run:
    transfers: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.transfers / self.seconds


def _completed(network: Network, registry: str) -> int:
    """Completed transactions in a registry's database, read without taking its write lock."""
    path = load_config(network.config(registry)).database.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        query = "SELECT count(*) FROM transactions WHERE status = ?"
        return int(connection.execute(query, (Status.COMPLETED.value,)).fetchone()[0])


def _queue(network: Network, source: str, target: str, count: int, offset: int) -> None:
    config = load_config(network.config("GHA01"))
    registry = build_engine(config, accounts.AccountRules(config.registry_id))
    engine = store.open_database(config.database, accounts.metadata)
    try:
        with engine.begin() as connection:
            for index in range(count):
                first = offset + index * 10 + 1
                proposal = Proposal(
                    TransactionType.EXTERNAL_TRANSFER, source, "CHE01", target,
                    ranges=[serial_range(first, first + 9)],
                )  # fmt: skip
                registry.propose(connection, proposal)
    finally:
        engine.dispose()


def measure(network: Network, source: str, target: str, count: int, offset: int) -> Run:
    before = (_completed(network, "GHA01"), _completed(network, "CHE01"))
    started = time.perf_counter()
    _queue(network, source, target, count, offset)
    deadline = started + 600
    while time.perf_counter() < deadline:
        done = (_completed(network, "GHA01") - before[0], _completed(network, "CHE01") - before[1])
        if done == (count, count):
            return Run(count, time.perf_counter() - started)
        time.sleep(0.05)
    raise TimeoutError(f"transfers not all completed: {done} of {count}")


def run(transfers: int, repeats: int) -> list[Run]:
    with tempfile.TemporaryDirectory(prefix="a6-bench-") as folder:
        network = Network(Path(folder), registries=("GHA01", "CHE01"))
        network.write()
        network.start_all()
        try:
            source = network.registry_cli("GHA01", "open-account", "--ca", "CA0001")
            target = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
            issued = network.registry_cli(
                "GHA01", "issue", "--account", source, "--ca", "CA0001", "--vintage", "2024",
                "--serials", f"1-{10 * transfers * (repeats + 1)}",
            )  # fmt: skip
            network.registry_cli("GHA01", "wait", issued)
            measure(network, source, target, min(50, transfers), 0)  # warm-up
            return [
                measure(network, source, target, transfers, 10 * transfers * (repeat + 1))
                for repeat in range(repeats)
            ]
        finally:
            network.stop_all()
