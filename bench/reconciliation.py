"""Reconciliation of a registry holding a million blocks: time, round trips and bytes.

The hub and GHA01 run as separate processes on loopback (gRPC, mutual TLS, SQLite). Their
databases are filled directly with the same N blocks of 10 units (a gap after each, so none
merge): the hub's ledger says GHA01 holds them, and GHA01's own holdings agree. Then the
operator runs a reconciliation through the admin service, twice: on the clean books, and
after one block's vintage was changed in GHA01's database. The figures are the hub's own
record of each run (round trips are requests the hub made of the registry; bytes count both
directions' envelopes; proposals held is from the run's start until it let GHA01's proposals
through again, both snapshots pinned), and the wall-clock time of the admin call.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from article6.block_table import to_db
from article6.identifiers import format_account_id
from article6.node.config import load_config
from article6.v1 import admin_pb2
from demo.network import Network

ACCOUNT = format_account_id("GHA01", 1001)
ATTRIBUTES = "2024, 'CA0001', 'GHA', '', 1, 2, 1, '', '', ''"
COLUMNS = (
    "space, serial_first, serial_last, vintage, cooperative_approach, first_transferring_party, "
    "authorization_id, purpose, unit_kind, state, activity_id, host_party, metric"
)
# Constant text, no input: the values are bound parameters.
INSERT_LEDGER = f"INSERT INTO ledger_blocks (registry, account_id, {COLUMNS}) " + (
    f"VALUES ('GHA01', ?, 'GHA01', ?, ?, {ATTRIBUTES})"
)
INSERT_HOLDING = f"INSERT INTO holdings (account_id, {COLUMNS}) " + (
    f"VALUES (?, 'GHA01', ?, ?, {ATTRIBUTES})"
)


@dataclass(frozen=True)
class Run:
    what: str
    seconds: float
    held_seconds: float  # proposals involving the registry waited (7002) this long
    round_trips: int
    bytes_exchanged: int
    differing: int
    status: int


def _fill(path: Path, statement: str, blocks: int) -> None:
    """N blocks of 10 units, serials 1-10, 21-30, ...: a gap after each, so none merge."""
    rows = ((ACCOUNT, to_db(20 * n + 1), to_db(20 * n + 10)) for n in range(blocks))
    with sqlite3.connect(path) as connection:
        connection.executemany(statement, rows)


def _run(network: Network, what: str) -> Run:
    started = time.perf_counter()
    with network.admin() as admin:
        reply = admin.RunReconciliation(
            admin_pb2.RunReconciliationRequest(registry="GHA01"), timeout=1800
        )
        seconds = time.perf_counter() - started
        found = admin.GetReconciliationRun(
            admin_pb2.GetReconciliationRunRequest(run_id=reply.run.run_id), timeout=60
        )
    run = reply.run
    held = (run.released_at.ToDatetime() - run.started_at.ToDatetime()).total_seconds()
    return Run(what, seconds, held, run.round_trips, run.bytes_exchanged,
               len(found.discrepancies), run.status)  # fmt: skip


def run(blocks: int) -> list[Run]:
    with tempfile.TemporaryDirectory(prefix="a6-bench-reconciliation-") as folder:
        network = Network(Path(folder), registries=("GHA01",))
        with network.running():
            hub_db = Path(folder) / "hub.db"
            registry_db = Path(load_config(network.config("GHA01")).database.removeprefix(
                "sqlite:///"
            ))  # fmt: skip
            _fill(hub_db, INSERT_LEDGER, blocks)
            _fill(registry_db, INSERT_HOLDING, blocks)
            clean = _run(network, "clean")
            with sqlite3.connect(registry_db) as connection:
                connection.execute(
                    "UPDATE holdings SET vintage = 2023 WHERE serial_first = ?",
                    (to_db(20 * (blocks // 2) + 1),),
                )
            one = _run(network, "one block altered")
    return [clean, one]
