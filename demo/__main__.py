"""``make demo``: a hub and two Party registries on loopback, through a realistic scenario.

Every component is its own process, talking gRPC over mutual TLS with signed envelopes and
keeping its state in SQLite. The scenario: issuance in GHA01; a partial transfer to CHE01
(the block splits); a transfer CHE01 refuses (unknown account); a transfer while CHE01 is
offline, completed once it is back; a use in CHE01. Then it prints the transactions and the
holdings as the hub and as each registry see them, and shuts everything down.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from article6.codes import Code
from article6.identifiers import format_account_id
from article6.model import Status, TransactionType
from article6.v1 import admin_pb2
from demo.network import HUB, Network

REGISTRIES = ("GHA01", "CHE01")


def step(text: str) -> None:
    print(f"\n- {text}")


def outcome(network: Network, registry: str, transaction_id: str) -> str:
    line = network.registry_cli(registry, "wait", transaction_id, "--timeout", "60")
    _, status, *codes = line.split()
    named = [f"{code} {Code(int(code)).name}" for code in codes[0].split(",")] if codes else []
    return f"{transaction_id}: {status}" + (f" ({'; '.join(named)})" if named else "")


def local_status(network: Network, registry: str, transaction_id: str) -> str:
    for row in network.registry_json(registry, "transactions"):
        if row["transaction_id"] == transaction_id:
            return str(row["status"])
    return "unknown"


def run_scenario(network: Network) -> None:
    gha = partial(network.registry_cli, "GHA01")
    che = partial(network.registry_cli, "CHE01")
    step("Accounts: each registry opens its own")
    gha_holding = gha("open-account", "--type", "holding", "--ca", "CA0001")
    che_holding = che("open-account", "--type", "holding", "--ca", "CA0001")
    che_ndc = che("open-account", "--type", "ndc-use", "--ca", "CA0001")
    print(f"  GHA01 holding {gha_holding}; CHE01 holding {che_holding}, NDC use {che_ndc}")

    step("GHA01 issues 1,000,000 ITMOs (CA0001, vintage 2024, serials 1-1000000)")
    issued = gha("issue", "--account", gha_holding, "--ca", "CA0001", "--vintage", "2024",
                 "--serials", "1-1000000", "--first-transferring-party", "GHA")  # fmt: skip
    print(f"  {outcome(network, 'GHA01', issued)}")

    step("GHA01 transfers serials 1-250000 to CHE01: the block splits")
    transfer = gha("transfer", "--from", gha_holding, "--to-registry", "CHE01",
                   "--to", che_holding, "--serials", "1-250000")  # fmt: skip
    print(f"  {outcome(network, 'GHA01', transfer)}")

    unknown = format_account_id("CHE01", 9999)
    step(f"GHA01 transfers serials 250001-251000 to {unknown}, which CHE01 does not have")
    refused = gha("transfer", "--from", gha_holding, "--to-registry", "CHE01",
                  "--to", unknown, "--serials", "250001-251000")  # fmt: skip
    print(f"  {outcome(network, 'GHA01', refused)}")

    step("CHE01 goes offline; GHA01 transfers serials 300001-350000 to it")
    network.stop("CHE01")
    offline = gha("transfer", "--from", gha_holding, "--to-registry", "CHE01",
                  "--to", che_holding, "--serials", "300001-350000")  # fmt: skip
    deadline = time.monotonic() + 30
    while local_status(network, "GHA01", offline) != "checked" and time.monotonic() < deadline:
        time.sleep(0.1)
    print(f"  {offline}: {local_status(network, 'GHA01', offline)}, waiting for CHE01")
    time.sleep(2)
    step("CHE01 comes back: the hub's outbox delivers, and the transfer completes")
    network.start("CHE01")
    print(f"  {outcome(network, 'GHA01', offline)}")

    step("CHE01 uses serials 1-100000 towards its NDC for 2030")
    use = che("use", "--from", che_holding, "--to", che_ndc, "--serials", "1-100000",
              "--party", "CHE", "--year", "2030")  # fmt: skip
    print(f"  {outcome(network, 'CHE01', use)}")


def print_transactions(network: Network) -> None:
    with network.admin() as admin:
        reply = admin.ListTransactions(admin_pb2.ListTransactionsRequest(), timeout=10)
    print("\nTransactions as the hub recorded them")
    print(f"  {'id':<9} {'type':<18} {'quantity':>10}  {'from':<6} {'to':<6} {'status':<11} codes")
    for summary in reversed(reply.transactions):
        tx = summary.transaction
        codes = ", ".join(f"{r.code} {Code(r.code).name}" for r in summary.results)
        print(
            f"  {tx.transaction_id:<9} {TransactionType(tx.type).name.lower():<18} "
            f"{tx.quantity:>10,}  {tx.transferring_registry:<6} {tx.acquiring_registry:<6} "
            f"{Status(summary.status).value} {Status(summary.status).name.lower():<9} {codes}"
        )


def hub_holdings(network: Network, registry: str) -> list[tuple[Any, ...]]:
    with network.admin() as admin:
        reply = admin.ListHoldings(admin_pb2.ListHoldingsRequest(registry=registry), timeout=10)
    return [
        (held.account_id, held.block.originating_registry, held.block.serial_first,
         held.block.serial_last, held.block.state)
        for held in reply.blocks
    ]  # fmt: skip


def print_holdings(network: Network) -> bool:
    print("\nHoldings: the hub's ledger and each registry's own database")
    agree = True
    states = {1: "held", 2: "used", 3: "cancelled"}
    for registry in REGISTRIES:
        hub = hub_holdings(network, registry)
        local = [
            (row["account"], row["space"], row["serial_first"], row["serial_last"],
             {"held": 1, "used": 2, "cancelled": 3}[row["state"]])
            for row in network.registry_json(registry, "holdings")
        ]  # fmt: skip
        same = sorted(hub) == sorted(local)
        agree = agree and same
        print(f"  {registry} ({'hub and registry agree' if same else 'MISMATCH'})")
        for account, space, first, last, state in sorted(hub):
            serials = f"{space}:{first}-{last}"
            print(f"    {account:<15} {serials:<22} {last - first + 1:>10,} {states[state]}")
    return agree


def print_metrics(network: Network) -> None:
    print("\nMetrics (Prometheus text format):")
    for name, endpoint in network.metrics.items():
        print(f"  {name:<6} http://{endpoint}/metrics")
    samples = network.scrape(HUB)

    def total(name: str, **labels: str) -> float:
        return sum(
            value
            for (sample, sample_labels), value in samples.items()
            if sample == name and labels.items() <= dict(sample_labels).items()
        )

    print("  live figures at the hub:")
    print(f"    transactions completed        {total('a6_transactions', status='completed'):.0f}")
    print(f"    transactions terminated       {total('a6_transactions', status='terminated'):.0f}")
    print(f"    RPCs served                   {total('a6_rpc_requests_total'):.0f}")
    print(f"    deliveries tried / failed     {total('a6_delivery_attempts_total'):.0f} / "
          f"{total('a6_delivery_failures_total'):.0f}")  # fmt: skip
    print(f"    messages awaiting delivery    {total('a6_outbox_messages'):.0f}")


def main() -> int:
    folder = Path("run") / datetime.now(UTC).strftime("demo-%Y%m%d-%H%M%S")
    network = Network(folder.resolve(), registries=REGISTRIES)
    network.write()
    print("Article 6 gateway demo: a hub and Party registries GHA01 and CHE01, each its own")
    print(f"process on loopback (gRPC, mutual TLS, signed envelopes, SQLite). Files: {folder}")
    agree = False
    try:
        network.start_all()
        run_scenario(network)
        print_transactions(network)
        agree = print_holdings(network)
        print_metrics(network)
    finally:
        exits = network.stop_all()
    clean = all(code == 0 for code in exits.values())
    stopped = "cleanly (exit code 0)" if clean else f"with exit codes {exits}"
    print(f"\nAll processes stopped {stopped}. Logs: {folder}/logs")
    return 0 if agree and clean else 1


if __name__ == "__main__":
    sys.exit(main())
