"""Helpers for end-to-end tests: a network of real processes and ways to drive it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from demo.__main__ import hub_holdings
from demo.network import Network

REGISTRIES = ("GHA01", "CHE01")


def make_network(folder: Path, **settings: Any) -> Iterator[Network]:
    with Network(folder, registries=REGISTRIES, **settings).running() as network:
        yield network


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def local_holdings(network: Network, registry: str) -> list[tuple[Any, ...]]:
    states = {"held": 1, "used": 2, "cancelled": 3}
    return sorted(
        (
            row["account"],
            row["space"],
            row["serial_first"],
            row["serial_last"],
            states[row["state"]],
        )
        for row in network.registry_json(registry, "holdings")
    )


def ledgers_agree(network: Network) -> bool:
    return all(
        sorted(hub_holdings(network, registry)) == local_holdings(network, registry)
        for registry in network.registries
    )


def assert_ledgers_agree(network: Network, settle_seconds: float = 0.0) -> None:
    """The hub's ledger and every registry's books agree; with ``settle_seconds``, once the
    completion notices still on their way have arrived."""
    if settle_seconds:
        wait_for(lambda: ledgers_agree(network), settle_seconds, "the books to settle")
    for registry in network.registries:
        assert sorted(hub_holdings(network, registry)) == local_holdings(network, registry), (
            registry
        )


def local_transaction(network: Network, registry: str, transaction_id: str) -> dict[str, Any]:
    rows = [r for r in network.registry_json(registry, "transactions")
            if r["transaction_id"] == transaction_id]  # fmt: skip
    assert len(rows) <= 1
    return rows[0] if rows else {}


def final(network: Network, registry: str, transaction_id: str) -> tuple[str, list[int]]:
    line = network.wait_final(registry, transaction_id)
    _, status, *codes = line.split()
    return status, [int(code) for code in codes[0].split(",")] if codes else []


def accounts(network: Network) -> tuple[str, str]:
    gha = network.registry_cli("GHA01", "open-account", "--ca", "CA0001")
    che = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
    issued = network.issue_itmos("GHA01", gha, "1-1000000")
    assert final(network, "GHA01", issued) == ("completed", [])
    return gha, che


def transfer(network: Network, source: str, target: str, serials: str) -> str:
    return network.registry_cli(
        "GHA01", "transfer", "--from", source, "--to-registry", "CHE01", "--to", target,
        "--serials", serials,
    )  # fmt: skip
