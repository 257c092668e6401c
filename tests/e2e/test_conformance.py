"""The conformance kit against our own registries and hub (real processes), and against a
deliberately broken registry that applies a duplicate completion twice."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import pytest

from article6.conformance import RegistryKit, RegistryUnderTest
from article6.model import Status
from article6.node import store
from article6.node.config import load_config
from article6.node.server import RegistryNode
from article6.unit import Unit
from article6.v1 import reconciliation_pb2, transaction_pb2
from article6.wire import transaction_spec
from demo.network import HUB, INTERNATIONAL, Network, free_port
from party_registry_stub import accounts


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Network]:
    with Network(tmp_path, registries=("GHA01", "CHE01", INTERNATIONAL)).running() as network:
        yield network


def kit(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "article6.cli", "conformance", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def test_the_kit_passes_our_registries_and_the_hub(three: Network) -> None:
    network = three
    che = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
    ir = partial(network.registry_cli, INTERNATIONAL)
    request = ir("request-section", "--party", "SGP", "--submitted-by", "NFP",
                 "--administrator", "PSA")  # fmt: skip
    ir("validate-request", request)
    ir("open-section", request)
    ir("verify-section", "SGP")
    sgp = ir("open-account", "--party", "SGP")
    for registry, account in (("CHE01", che), (INTERNATIONAL, sgp)):
        endpoint = network.components[registry].endpoint
        done = kit("registry", "--endpoint", endpoint, "--registry", registry,
                   "--account", account, "--pki", str(network.pki))  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "17 passed, 0 failed" in done.stdout
        assert "remove-space --config <config> --space KIT01" in done.stdout
    done = kit("hub", "--endpoint", network.components[HUB].endpoint, "--registry", "GHA01",
               "--pki", str(network.pki))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "17 passed, 0 failed" in done.stdout

    # The kit's units (serial space KIT01) are in CHE01's books but not in the hub's ledger,
    # so a reconciliation disagrees until they are removed, and agrees after.
    reconcile = partial(network.admin_cli, "reconcile", "CHE01")
    assert reconcile().returncode == 1
    said = network.registry_cli("CHE01", "remove-space", "--space", "KIT01",
                                "--reason", "conformance kit run")  # fmt: skip
    assert said.startswith("removed 1 block(s), 100 units, of serial space KIT01"), said
    assert not [h for h in network.registry_json("CHE01", "holdings") if h["space"] == "KIT01"]
    agreed = reconcile()
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert " completed " in agreed.stdout


def test_a_registry_that_applies_a_duplicate_completion_twice_fails_that_check(
    tmp_path: Path,
) -> None:
    network = Network(tmp_path, registries=("GHA01",))
    network.write()
    config = load_config(network.config("GHA01"))
    account = network.registry_cli("GHA01", "open-account", "--ca", "CA0001")
    loop = asyncio.new_event_loop()
    node = RegistryNode(config, accounts.AccountRules(config.registry_id), (accounts.metadata,))
    engine = node.registry

    def settle_every_time(
        unit: Unit,
        message: transaction_pb2.Transaction,
        status: Status,
        results: Sequence[tuple[int, str]] = (),
        confirm_in_receipt: bool = False,
    ) -> reconciliation_pb2.LegConfirmation | None:
        """The bug: no check that the outcome was applied already."""
        connection = unit.connection
        if status is Status.COMPLETED:
            engine._complete(connection, transaction_spec(message))
        store.put_transaction(
            connection, message.transaction_id, role="acquirer", status=status,
            body=message.SerializeToString(), applied=True, results=results,
        )  # fmt: skip
        return None

    engine.settle = settle_every_time  # type: ignore[method-assign]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(node.start(), loop).result(30)
    asyncio.run_coroutine_threadsafe(node.serving(), loop).result(30)
    try:
        target = RegistryUnderTest(config.listen, "GHA01", account, network.pki)
        battery = RegistryKit(target).run()
    finally:
        asyncio.run_coroutine_threadsafe(node.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    failed = [check.name for check in battery.checks if not check.passed]
    assert failed == ["a duplicate completion is applied once"], battery.table()


def test_status_recovery_is_checked_with_the_registry_pointed_at_the_kit(tmp_path: Path) -> None:
    """The registry's hub endpoint is the kit's: the kit withholds a completion notice and
    answers the registry's status query instead."""
    network = Network(tmp_path, registries=("CHE01",))
    network.write()
    kit_address = f"127.0.0.1:{free_port()}"
    config = network.config("CHE01")
    hub_line = next(line for line in config.read_text().splitlines() if "hub_endpoint" in line)
    config.write_text(config.read_text().replace(hub_line, f'hub_endpoint = "{kit_address}"'))
    network.start("CHE01")
    try:
        account = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
        done = kit("registry", "--endpoint", network.components["CHE01"].endpoint,
                   "--registry", "CHE01", "--account", account, "--pki", str(network.pki),
                   "--listen", kit_address, "--recovery-timeout", "60")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "a lost completion is recovered by a status query" in done.stdout
        assert "18 passed, 0 failed" in done.stdout
    finally:
        network.stop_all()
