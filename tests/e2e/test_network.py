"""End to end: the hub and Party registries as real processes on loopback with mutual TLS.

Each test starts its own network, drives it through the registries' command lines and the
hub's gRPC services, kills and restarts processes, and checks that every registry's own
holdings equal the hub's ledger afterwards.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest

from article6.aef.check import check_workbook
from article6.codes import Code
from article6.envelope import seal
from article6.headers import new_header
from article6.keys import SigningKey
from article6.pki import RegistryFiles
from article6.status import refusal_from_error
from article6.tls import TlsMaterial, channel_credentials, channel_options
from article6.v1 import admin_pb2, hub_pb2_grpc, transaction_pb2
from demo.__main__ import REGISTRIES as DEMO_REGISTRIES
from demo.__main__ import run_international_scenario, run_scenario
from demo.network import HUB, INTERNATIONAL, Network
from tests.builders import issuance
from tests.e2e.helpers import (
    accounts,
    assert_ledgers_agree,
    final,
    local_holdings,
    local_transaction,
    make_network,
    transfer,
    wait_for,
)


@pytest.fixture
def demo_network(tmp_path: Path) -> Iterator[Network]:
    """The demo's network: the hub, GHA01, CHE01 and the international registry."""
    with Network(tmp_path, registries=DEMO_REGISTRIES).running() as network:
        yield network


SGP_ACTIONS = [
    {"action_type": "First transfer", "action_subtype": "First transfer to another Party",
     "first_id": "CA0001-SGP00-SGP-1-2024", "last_id": "CA0001-SGP00-SGP-50000-2024",
     "quantity": 50000, "transferring_party": "SGP", "acquiring_party": "CHE"},
    {"action_type": "Acquisition", "action_subtype": "",
     "first_id": "CA0001-SGP00-SGP-1-2024", "last_id": "CA0001-SGP00-SGP-10000-2024",
     "quantity": 10000, "transferring_party": "CHE", "acquiring_party": "SGP"},
    {"action_type": "Transfer", "action_subtype": "",
     "first_id": "CA0001-SGP00-SGP-1-2024", "last_id": "CA0001-SGP00-SGP-5000-2024",
     "quantity": 5000, "transferring_party": "SGP", "acquiring_party": "CHE"},
]  # fmt: skip
SAME_IN_EVERY_ROW = {
    "cooperative_approach": "CA0001", "authorization_id": "SGP-2026-001",
    "first_transferring_party": "SGP", "registry": "SGP00", "metric": "GHG", "vintage": 2024,
    "purpose": "", "using_party": "", "using_entity": "", "year_of_use": "",
}  # fmt: skip


def test_the_demo_scenario_leaves_every_ledger_in_agreement(demo_network: Network) -> None:
    network = demo_network
    accounts = run_scenario(network)
    run_international_scenario(network, accounts)
    with network.admin() as admin:
        summaries = admin.ListTransactions(admin_pb2.ListTransactionsRequest(), timeout=10)
    statuses = {s.transaction.transaction_id: s.status for s in summaries.transactions}
    # GHA01-2 is the minting attempt: the hub's checks failed (3), it ended terminated (5).
    # GHA01-6 is the first transfer CHE01 refused: rejected by the acquiring registry (6).
    assert statuses == {
        "GHA01-1": 4, "GHA01-2": 5, "GHA01-3": 4, "GHA01-4": 4, "GHA01-5": 4, "GHA01-6": 6,
        "GHA01-7": 4, "CHE01-1": 4, "UNIR-1": 4, "UNIR-2": 4, "UNIR-3": 4, "CHE01-2": 4,
        "UNIR-4": 4, "CHE01-3": 4,
    }  # fmt: skip
    wait_for(lambda: local_transaction(network, "CHE01", "UNIR-4").get("status") == "completed",
             what="CHE01 to apply the last transfer")  # fmt: skip
    assert_ledgers_agree(network)
    che = {(row[1], row[2]): row for row in local_holdings(network, "CHE01")}
    assert che["GHA01", 1][4] == 2  # serials 1-100000 used towards the NDC
    assert che["SGP00", 1][4] == 2


def test_the_demo_aef_export_is_right_cell_by_cell(demo_network: Network) -> None:
    network = demo_network
    run_international_scenario(network, run_scenario(network))
    year = str(datetime.now(UTC).year)
    aef = partial(network.registry_cli, INTERNATIONAL, "aef", "--party", "SGP")

    def table(name: str, in_year: str = year) -> list[dict[str, Any]]:
        rows = json.loads(aef("--year", in_year, "--format", "json", "--table", name))
        return [{key: value for key, value in row.items() if value != ""} for row in rows]

    actions = json.loads(aef("--year", year, "--format", "json"))
    assert len(actions) == len(SGP_ACTIONS)
    for row, expected in zip(actions, SGP_ACTIONS, strict=True):
        assert re.fullmatch(rf"\d\d/\d\d/{year}", row.pop("date"))
        assert {k: v for k, v in row.items() if k in {**SAME_IN_EVERY_ROW, **expected}} == {
            **SAME_IN_EVERY_ROW, **expected
        }  # fmt: skip
    [granted] = table("authorizations")
    assert {k: granted[k] for k in ("authorization_id", "version", "quantity", "purposes",
                                    "occurred_from", "occurred_to", "first_transfer_definition",
                                    "metric")} == {
        "authorization_id": "SGP-2026-001", "version": 1, "quantity": 80000, "purposes": "NDC",
        "occurred_from": 2021, "occurred_to": 2030, "first_transfer_definition": "NA",
        "metric": "GHG",
    }  # fmt: skip
    # Held: the ITMOs SGP00:5001-10000; the outcomes still in the ARS are not ITMOs yet.
    assert [(r["first_id"], r["last_id"], r["quantity"]) for r in table("holdings")] == [
        ("CA0001-SGP00-SGP-5001-2024", "CA0001-SGP00-SGP-10000-2024", 5000)
    ]
    summary = {row["item"]: row["value"] for row in table("summary")}
    assert (summary["Party ITMO registry"], summary["Actions: Transfer"]) == ("SGP00", 1)
    lines = aef("--year", year, "--format", "csv").splitlines()
    assert lines[0].startswith("Action date,Action type,Action subtype,Cooperative approach ID")
    assert len(lines) == 1 + len(SGP_ACTIONS)
    # The workbook, as the Party files it: every cell passes the AEF's checks.
    workbook = network.folder / "SGP.xlsx"
    said = aef("--year", year, "--out", str(workbook))
    assert said == f"{workbook}: Table 1 12, Table 2 1, Table 3 3, Table 4 1, Table 5 0 rows"
    assert check_workbook(workbook) == []
    assert table("actions", str(int(year) - 1)) == []
    # CHE's own export (ITMOs sent to SGP's section, some acquired back and used, all on one
    # day) checks consistent against the hub's ledger.
    che = network.folder / "CHE.xlsx"
    network.registry_cli("CHE01", "aef", "--year", year, "--out", str(che))
    done = network.admin_cli("aef-check", str(che), "--party", "CHE", "--year", year)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_process_stops_cleanly_on_sigterm(network: Network) -> None:
    assert network.stop_all() == {"CHE01": 0, "GHA01": 0, HUB: 0}


def test_replays_to_the_hub_process_are_answered_from_its_record(network: Network) -> None:
    files = RegistryFiles(network.pki, "GHA01")
    key = SigningKey.from_pem(files.signing_key.read_bytes())
    proposal = transaction_pb2.TransactionProposal(
        header=new_header("GHA01", HUB, datetime.now(UTC)),
        transaction=issuance("GHA01-77", 5_000_001, 5_000_100),
    )
    request = seal(proposal, [key])
    credentials = channel_credentials(TlsMaterial.load(files))
    hub = network.components[HUB].endpoint
    with grpc.secure_channel(hub, credentials, options=channel_options(HUB)) as channel:
        stub = hub_pb2_grpc.HubStub(channel)
        first = stub.ProposeTransaction(request, timeout=10)
        again = stub.ProposeTransaction(request, timeout=10)
        assert first.SerializeToString() == again.SerializeToString()
        proposal.transaction.quantity += 1
        with pytest.raises(grpc.RpcError) as error:
            stub.ProposeTransaction(seal(proposal, [key]), timeout=10)
    refusal = refusal_from_error(error.value)
    assert refusal is not None
    assert refusal.code is Code.MESSAGE_ID_REUSED


def test_a_hub_killed_mid_transfer_completes_it_exactly_once_after_restart(
    network: Network,
) -> None:
    gha, che = accounts(network)
    network.stop("CHE01")
    pending = transfer(network, gha, che, "1-250000")
    wait_for(lambda: local_transaction(network, "GHA01", pending).get("status") == "checked",
             what="the hub to accept the proposal")  # fmt: skip
    network.stop(HUB, kill=True)  # SIGKILL: between acceptance and completion
    network.start("CHE01")
    network.start(HUB)
    assert final(network, "GHA01", pending) == ("completed", [])
    wait_for(lambda: local_transaction(network, "CHE01", pending).get("status") == "completed",
             what="CHE01 to apply the completion")  # fmt: skip
    assert_ledgers_agree(network)
    che_units = sum(row[3] - row[2] + 1 for row in local_holdings(network, "CHE01"))
    assert che_units == 250_000


def test_a_hub_killed_at_a_random_moment_loses_and_duplicates_nothing(network: Network) -> None:
    gha, che = accounts(network)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    transfers = [transfer(network, gha, che, f"{i * 1000 + 1}-{i * 1000 + 500}") for i in range(8)]
    time.sleep(rng.uniform(0.0, 0.5))
    network.stop(HUB, kill=True)
    network.start(HUB)
    for transaction_id in transfers:
        assert final(network, "GHA01", transaction_id) == ("completed", []), f"seed {seed}"
    wait_for(lambda: all(local_transaction(network, "CHE01", t).get("status") == "completed"
                         for t in transfers), what=f"CHE01 to apply all (seed {seed})")  # fmt: skip
    assert_ledgers_agree(network)
    che_units = sum(row[3] - row[2] + 1 for row in local_holdings(network, "CHE01"))
    assert che_units == 8 * 500, f"seed {seed}"


def test_an_acquirer_down_past_the_time_out_cancels_and_releases_everywhere(
    impatient_network: Network,
) -> None:
    network = impatient_network
    gha, che = accounts(network)
    network.stop("CHE01")
    pending = transfer(network, gha, che, "1-1000")
    assert final(network, "GHA01", pending) == ("cancelled", [Code.TRANSACTION_TIMED_OUT.value])
    network.start("CHE01")
    assert_ledgers_agree(network)
    assert local_holdings(network, "CHE01") == []
    again = transfer(network, gha, che, "1-1000")  # the units were released
    assert final(network, "GHA01", again) == ("completed", [])
    assert_ledgers_agree(network)


@pytest.fixture
def patient_network(tmp_path: Path) -> Iterator[Network]:
    """Gives up delivering after two attempts, but waits 300 s for an answer."""
    yield from make_network(
        tmp_path,
        acceptance_timeout_seconds=300.0,
        delivery={"max_attempts": 2, "backoff_initial_seconds": 0.1, "backoff_max_seconds": 0.2},
    )


def dead_letters(network: Network) -> list[admin_pb2.OutboxEntry]:
    with network.admin() as admin:
        request = admin_pb2.ListOutboxRequest(dead_letters=True)
        return list(admin.ListOutbox(request, timeout=10).entries)


def test_a_dead_letter_retried_by_an_operator_completes_the_transfer(
    patient_network: Network,
) -> None:
    network = patient_network
    gha, che = accounts(network)
    network.stop("CHE01")
    pending = transfer(network, gha, che, "1-1000")
    wait_for(lambda: bool(dead_letters(network)), what="the acquisition request to dead-letter")
    [letter] = dead_letters(network)
    assert (letter.recipient, letter.transaction_id) == ("CHE01", pending)
    network.start("CHE01")
    with network.admin() as admin:
        admin.RetryDeadLetter(admin_pb2.RetryDeadLetterRequest(entry_id=letter.entry_id))
    assert final(network, "GHA01", pending) == ("completed", [])
    wait_for(lambda: local_transaction(network, "CHE01", pending).get("status") == "completed",
             what="CHE01 to apply the completion")  # fmt: skip
    assert_ledgers_agree(network)


def test_authorized_outcomes_become_itmos_on_first_transfer(network: Network) -> None:
    gha = network.registry_cli("GHA01", "open-account", "--ca", "CA0001")
    che = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
    cli = partial(network.registry_cli, "GHA01")
    issued = cli("issue", "--account", gha, "--kind", "mitigation-outcome", "--vintage", "2024",
                 "--serials", "1-1000")  # fmt: skip
    assert final(network, "GHA01", issued) == ("completed", [])
    authorized = cli(
        "authorize", "--from", gha, "--serials", "1-1000", "--authorization-id", "GHA-A1",
        "--ca", "CA0001", "--cap", "600", "--vintages", "2021-2025",
    )  # fmt: skip
    assert final(network, "GHA01", authorized) == ("completed", [])
    first = cli("first-transfer", "--from", gha, "--serials", "1-500", "--to-registry", "CHE01",
                "--to", che)  # fmt: skip
    assert final(network, "GHA01", first) == ("completed", [])
    over = cli("first-transfer", "--from", gha, "--serials", "501-700", "--to-registry", "CHE01",
               "--to", che)  # fmt: skip
    assert final(network, "GHA01", over) == ("terminated", [Code.AUTHORIZATION_CAP_EXCEEDED.value])
    wait_for(lambda: local_transaction(network, "CHE01", first).get("status") == "completed",
             what="CHE01 to apply the first transfer")  # fmt: skip
    [arrived] = network.registry_json("CHE01", "holdings")
    assert (arrived["serial_first"], arrived["serial_last"]) == (1, 500)
    assert (arrived["unit_kind"], arrived["first_transferring_party"]) == ("itmo", "GHA")
    assert arrived["authorization_id"] == "GHA-A1"
    with network.admin() as admin:
        hub = admin.ListHoldings(admin_pb2.ListHoldingsRequest(registry="CHE01"), timeout=10)
    [block] = hub.blocks
    assert (block.block.unit_kind, block.block.first_transferring_party) == (2, "GHA")
    assert_ledgers_agree(network)
