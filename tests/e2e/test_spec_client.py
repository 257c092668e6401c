"""The spec is enough: a registry client written from docs/PROTOCOL.md alone (tests/spec_client,
which imports none of the project's protocol code) issues mitigation outcomes, authorizes
them and first transfers them to the reference registry through the hub, where they arrive as
ITMOs."""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from article6.v1 import transaction_pb2, units_pb2
from demo.network import HUB, Network
from tests.e2e.helpers import local_holdings
from tests.spec_client import MinimalRegistry, account_id

T = transaction_pb2
PROJECT_PACKAGES = {"article6", "gateway", "party_registry_stub", "international_registry",
                    "mechanism_registry_adapter", "demo", "tests"}  # fmt: skip


@pytest.fixture
def hub_and_che01(tmp_path: Path) -> Iterator[Network]:
    """The hub and CHE01 run; GHA01 is in the directory but is played by the minimal client."""
    network = Network(tmp_path, registries=("GHA01", "CHE01"))
    network.write()
    network.start(HUB)
    network.start("CHE01")
    try:
        yield network
    finally:
        network.stop_all()


def outcomes(first: int, last: int, **bound: object) -> units_pb2.UnitBlock:
    """Mitigation outcomes of GHA01 (section 10.8), unauthorized unless ``bound``."""
    return units_pb2.UnitBlock(
        serial_first=first, serial_last=last, originating_registry="GHA01", vintage=2024,
        unit_kind=units_pb2.UNIT_KIND_MITIGATION_OUTCOME, state=units_pb2.UNIT_STATE_HELD,
        **bound,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_client_built_from_the_spec_alone_completes_a_first_transfer(
    hub_and_che01: Network,
) -> None:
    network = hub_and_che01
    che_account = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
    client = MinimalRegistry("GHA01", network.components[HUB].endpoint, network.pki)
    try:
        own = account_id("GHA01", 1001)
        issuance = T.Transaction(
            transaction_id="GHA01-1", type=T.TRANSACTION_TYPE_ISSUANCE,
            transferring_registry="GHA01", acquiring_registry="GHA01", acquiring_account=own,
            blocks=[outcomes(1, 1000)], quantity=1000,
        )  # fmt: skip
        request, receipt = client.propose(issuance)
        assert (receipt.accepted, receipt.status) == (True, T.TRANSACTION_STATUS_COMPLETED)
        # A retry of the same message gets the same receipt, byte for byte (section 7).
        again = client.hub.ProposeTransaction(request, timeout=10)
        assert client.open(again, T.Receipt) == receipt

        granted = T.Authorization(
            authorization_id="GHA-A1", authorizing_party="GHA", cooperative_approach="CA0001",
            purpose=units_pb2.PURPOSE_NDC, vintage_first=2021, vintage_last=2030, version=1,
        )  # fmt: skip
        authorization = T.Transaction(
            transaction_id="GHA01-2", type=T.TRANSACTION_TYPE_AUTHORIZATION,
            transferring_registry="GHA01", transferring_account=own,
            acquiring_registry="GHA01", blocks=[outcomes(1, 1000)], quantity=1000,
            authorization=granted,
        )  # fmt: skip
        _, receipt = client.propose(authorization)
        assert (receipt.accepted, receipt.status) == (True, T.TRANSACTION_STATUS_COMPLETED)

        bound = {"cooperative_approach": "CA0001", "authorization_id": "GHA-A1",
                 "purpose": units_pb2.PURPOSE_NDC}  # fmt: skip
        transfer = T.Transaction(
            transaction_id="GHA01-3", type=T.TRANSACTION_TYPE_FIRST_TRANSFER,
            transferring_registry="GHA01", transferring_account=own,
            acquiring_registry="CHE01", acquiring_account=che_account,
            blocks=[outcomes(1, 100, **bound)], quantity=100,
            first_transfer=T.FirstTransfer(
                first_transferring_party="GHA",
                trigger=T.FIRST_TRANSFER_TRIGGER_INTERNATIONAL_TRANSFER,
            ),
        )  # fmt: skip
        _, receipt = client.propose(transfer)
        assert (receipt.accepted, receipt.status) == (True, T.TRANSACTION_STATUS_CHECKED)
        deadline = time.monotonic() + 30
        while client.status("GHA01-3").status != T.TRANSACTION_STATUS_COMPLETED:
            assert time.monotonic() < deadline, "the first transfer did not complete"
            time.sleep(0.2)
    finally:
        client.close()
    assert (che_account, "GHA01", 1, 100, 1) in local_holdings(network, "CHE01")
    [arrived] = network.registry_json("CHE01", "holdings")
    assert (arrived["unit_kind"], arrived["first_transferring_party"]) == ("itmo", "GHA")


def test_the_client_imports_only_generated_code_of_the_project() -> None:
    source = (Path(__file__).resolve().parents[1] / "spec_client.py").read_text()
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    ours = {m for m in modules if m.split(".")[0] in PROJECT_PACKAGES}
    assert ours == {"article6.v1"}, ours
