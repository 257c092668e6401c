"""Reconciliation end to end: real processes, a registry's database altered behind its back,
the run finding exactly the altered blocks, freezing them, and resolution unfreezing them."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from article6.block_table import to_db
from article6.codes import Code
from article6.v1 import admin_pb2
from demo.network import Network
from tests.e2e.helpers import final, local_transaction, wait_for

COMPLETED, BLOCKS_INCONSISTENT, MANUAL, START_DENIED = 5, 4, 6, 7


def admin_cli(network: Network, *args: str) -> str:
    command = [
        sys.executable, "-m", "gateway.admin_cli", "--endpoint", network.admin_endpoint,
        "--pki", str(network.pki), *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def reconcile(
    network: Network, registry: str, settle_seconds: float = 30.0
) -> admin_pb2.ReconciliationRun:
    """A run with ``registry``; while completion notices to it are still on their way the
    start is denied, and the run is tried again for up to ``settle_seconds``."""
    deadline = time.monotonic() + settle_seconds
    while True:
        with network.admin() as admin:
            run = admin.RunReconciliation(
                admin_pb2.RunReconciliationRequest(registry=registry), timeout=120
            ).run
        if run.status != START_DENIED or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def discrepancies(network: Network, run_id: str) -> list[tuple[str, int, int, int]]:
    with network.admin() as admin:
        reply = admin.GetReconciliationRun(
            admin_pb2.GetReconciliationRunRequest(run_id=run_id), timeout=30
        )
    return sorted(
        (d.side, d.block.block.serial_first, d.block.block.serial_last, d.block.block.vintage)
        for d in reply.discrepancies
    )


def tamper(network: Network, registry: str, *statements: tuple[str, tuple[object, ...]]) -> None:
    with sqlite3.connect(network.folder / f"{registry.lower()}.db") as database:
        for sql, values in statements:
            database.execute(sql, values)


def test_a_run_finds_exactly_the_altered_blocks_freezes_them_and_resolution_unfreezes(
    network: Network,
) -> None:
    gha = network.registry_cli("GHA01", "open-account", "--ca", "CA0001")
    che = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
    for first in (1, 2001, 4001, 6001):
        issued = network.issue_itmos("GHA01", gha, f"{first}-{first + 999}")
        assert final(network, "GHA01", issued) == ("completed", [])
    moved = network.registry_cli("GHA01", "transfer", "--from", gha, "--to-registry", "CHE01",
                                 "--to", che, "--serials", "1-500")  # fmt: skip
    assert final(network, "GHA01", moved) == ("completed", [])

    # A clean network reconciles clean.
    for registry in ("GHA01", "CHE01"):
        run = reconcile(network, registry)
        assert (run.status, run.open, run.holding) == (COMPLETED, False, False), run.detail
        assert run.round_trips <= 3  # the request, the totals, the result: the roots agree
        # Proposals were held only until both snapshots were pinned, before the comparison.
        assert run.started_at.ToDatetime() <= run.released_at.ToDatetime()
        assert run.released_at.ToDatetime() <= run.finished_at.ToDatetime()

    # Behind GHA01's back: an extra block, a missing block, a changed attribute, and a
    # block split differently.
    row = ("INSERT INTO holdings (account_id, space, serial_first, serial_last, vintage, "
           "cooperative_approach, first_transferring_party, authorization_id, purpose, "
           "unit_kind, state, activity_id, host_party, metric) "
           "VALUES (?, 'GHA01', ?, ?, 2024, 'CA0001', 'GHA', '', 1, 2, 1, '', '', '')")  # fmt: skip
    tamper(
        network, "GHA01",
        (row, (gha, to_db(9001), to_db(9100))),
        ("DELETE FROM holdings WHERE serial_first = ?", (to_db(2001),)),
        ("UPDATE holdings SET vintage = 2023 WHERE serial_first = ?", (to_db(4001),)),
        ("UPDATE holdings SET serial_last = ? WHERE serial_first = ?", (to_db(6500), to_db(6001))),
        (row, (gha, to_db(6501), to_db(7000))),
    )  # fmt: skip
    run = reconcile(network, "GHA01")
    assert run.status == BLOCKS_INCONSISTENT, run.detail
    assert run.round_trips <= 25
    assert discrepancies(network, run.run_id) == [
        ("hub", 2001, 3000, 2024), ("hub", 4001, 5000, 2024), ("hub", 6001, 7000, 2024),
        ("registry", 4001, 5000, 2023), ("registry", 6001, 6500, 2024),
        ("registry", 6501, 7000, 2024), ("registry", 9001, 9100, 2024),
    ]  # fmt: skip
    assert reconcile(network, "CHE01").status == COMPLETED  # the other registry is untouched

    # Frozen: a transfer touching the split block is refused; one elsewhere goes through.
    frozen = network.registry_cli("GHA01", "transfer", "--from", gha, "--to-registry", "CHE01",
                                  "--to", che, "--serials", "6001-6100")  # fmt: skip
    assert final(network, "GHA01", frozen) == ("terminated", [Code.UNITS_FROZEN])
    elsewhere = network.registry_cli("GHA01", "transfer", "--from", gha, "--to-registry",
                                     "CHE01", "--to", che, "--serials", "501-600")  # fmt: skip
    assert final(network, "GHA01", elsewhere) == ("completed", [])

    # Resolution, with reasons, unfreezes; the run ends as completed with manual intervention.
    listed = admin_cli(network, "discrepancies", "--open", "--registry", "GHA01")
    numbers = [int(line.split()[0]) for line in listed.splitlines()]
    assert len(numbers) == 7
    for number in numbers:
        out = admin_cli(network, "resolve", str(number), "--reason", "registry restored")
        assert "resolved by OPERATOR: registry restored" in out
    assert admin_cli(network, "discrepancies", "--open").strip() == "(none)"
    with network.admin() as admin:
        runs = admin.ListReconciliationRuns(
            admin_pb2.ListReconciliationRunsRequest(registry="GHA01"), timeout=10
        )
    assert runs.runs[0].status == MANUAL
    again = network.registry_cli("GHA01", "transfer", "--from", gha, "--to-registry", "CHE01",
                                 "--to", che, "--serials", "6001-6100")  # fmt: skip
    assert final(network, "GHA01", again) == ("completed", [])


def test_the_scheduler_reconciles_each_registry_and_a_busy_registry_is_denied_a_start(
    tmp_path: Path,
) -> None:
    network = Network(tmp_path, registries=("GHA01", "CHE01"),
                      reconciliation_interval_seconds=0.5)  # fmt: skip
    with network.running():
        gha = network.registry_cli("GHA01", "open-account", "--ca", "CA0001")
        che = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
        issued = network.issue_itmos("GHA01", gha, "1-1000")
        assert final(network, "GHA01", issued) == ("completed", [])

        def statuses(registry: str) -> list[int]:
            with network.admin() as admin:
                listed = admin.ListReconciliationRuns(
                    admin_pb2.ListReconciliationRunsRequest(registry=registry), timeout=10
                )
            return [run.status for run in listed.runs]

        wait_for(lambda: COMPLETED in statuses("GHA01") and COMPLETED in statuses("CHE01"),
                 30, "scheduled runs")  # fmt: skip

        # With CHE01 down, a transfer to it stays pending: a run with GHA01 may not start.
        network.stop("CHE01")
        pending = network.registry_cli("GHA01", "transfer", "--from", gha, "--to-registry",
                                       "CHE01", "--to", che, "--serials", "1-10")  # fmt: skip
        wait_for(lambda: local_transaction(network, "GHA01", pending).get("status") == "checked",
                 30, "the transfer to be checked")  # fmt: skip

        def denied_for_the_pending_transfer() -> bool:  # (not for a scheduled run's overlap)
            run = reconcile(network, "GHA01", settle_seconds=0)
            return run.status == START_DENIED and "not final" in run.detail

        wait_for(denied_for_the_pending_transfer, 10, "a start denied")
        network.start("CHE01")
        assert final(network, "GHA01", pending) == ("completed", [])
