"""End to end, through real processes: each way a transaction can fail ends in the status the
Kyoto DES gives it, set by the side the DES names (docs/PROTOCOL.md section 10.1), at the hub
and in the registries' own books; and the real path to ITMOs (outcomes, an authorization and
its revision, a first transfer) with a minting attempt refused."""

from __future__ import annotations

from article6.codes import Code
from article6.identifiers import format_account_id
from article6.v1 import admin_pb2
from demo.network import Network
from tests.e2e.helpers import assert_ledgers_agree, final, local_transaction
from tests.e2e.test_operations import admin_cli

PROPOSED, CHECKED, DISCREPANCY, COMPLETED, TERMINATED, REJECTED, CANCELLED, ACCEPTED = range(1, 9)


def history(network: Network, transaction_id: str) -> list[int]:
    """The statuses the hub recorded for a transaction, in order."""
    with network.admin() as admin:
        reply = admin.GetTransaction(
            admin_pb2.GetTransactionRequest(transaction_id=transaction_id), timeout=10
        )
    return [int(change.status) for change in reply.history]


def test_each_refusal_path_ends_in_its_des_status(impatient_network: Network) -> None:
    network = impatient_network
    gha = network.registry_cli("GHA01", "open-account", "--ca", "CA0001")
    che = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
    cli = network.registry_cli
    issued = cli("GHA01", "issue", "--account", gha, "--vintage", "2024", "--serials", "1-1000")
    assert final(network, "GHA01", issued) == ("completed", [])

    # The hub's checks fail: it answers 3 (checked, discrepancy) and the transaction ends 5.
    minted = cli("GHA01", "issue", "--kind", "itmo", "--account", gha, "--ca", "CA0001",
                 "--vintage", "2024", "--serials", "5001-5100")  # fmt: skip
    assert final(network, "GHA01", minted) == (
        "terminated", [Code.ITMO_ISSUANCE_NOT_FIRST_TRANSFER.value]
    )  # fmt: skip
    assert history(network, minted) == [PROPOSED, DISCREPANCY, TERMINATED]

    granted = cli("GHA01", "authorize", "--authorization-id", "GHA-A1", "--ca", "CA0001",
                  "--vintages", "2021-2030", "--from", gha, "--serials", "1-1000")  # fmt: skip
    assert final(network, "GHA01", granted) == ("completed", [])

    # The acquiring registry refuses: 6 (rejected) at the hub, and GHA01 terminates it.
    unknown = format_account_id("CHE01", 9999)
    refused = cli("GHA01", "first-transfer", "--from", gha, "--serials", "1-10",
                  "--to-registry", "CHE01", "--to", unknown)  # fmt: skip
    assert final(network, "GHA01", refused) == (
        "terminated", [Code.ACQUIRING_ACCOUNT_NOT_FOUND.value]
    )  # fmt: skip
    assert history(network, refused) == [PROPOSED, CHECKED, REJECTED]
    assert local_transaction(network, "CHE01", refused)["status"] == "rejected"

    # The way through: accepted (8), then completed (4); the units arrive as ITMOs.
    done = cli("GHA01", "first-transfer", "--from", gha, "--serials", "1-100",
               "--to-registry", "CHE01", "--to", che)  # fmt: skip
    assert final(network, "GHA01", done) == ("completed", [])
    assert history(network, done) == [PROPOSED, CHECKED, ACCEPTED, COMPLETED]
    arrived = network.registry_json("CHE01", "holdings")
    assert [(r["serial_first"], r["serial_last"], r["unit_kind"]) for r in arrived] == [
        (1, 100, "itmo")
    ]

    # No answer in time: the hub cancels it (7), and so does GHA01.
    network.stop("CHE01")
    silent = cli("GHA01", "first-transfer", "--from", gha, "--serials", "101-110",
                 "--to-registry", "CHE01", "--to", che)  # fmt: skip
    assert final(network, "GHA01", silent) == ("cancelled", [Code.TRANSACTION_TIMED_OUT.value])
    assert history(network, silent) == [PROPOSED, CHECKED, CANCELLED]
    network.start("CHE01")
    assert_ledgers_agree(network, settle_seconds=30)


def test_an_authorization_is_revised_before_first_transfer_and_every_version_is_kept(
    network: Network,
) -> None:
    gha = network.registry_cli("GHA01", "open-account", "--ca", "CA0001")
    che = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
    cli = network.registry_cli
    issued = cli("GHA01", "issue", "--account", gha, "--vintage", "2024", "--serials", "1-1000")
    assert final(network, "GHA01", issued) == ("completed", [])
    terms = ("--authorization-id", "GHA-V", "--ca", "CA0001", "--vintages", "2021-2030",
             "--entity", "Volta Cookstoves Ltd;GHA;CS-2019-0042")  # fmt: skip
    first = cli("GHA01", "authorize", *terms, "--cap", "300", "--from", gha, "--serials", "1-1000")
    assert final(network, "GHA01", first) == ("completed", [])
    over = cli("GHA01", "first-transfer", "--from", gha, "--serials", "1-400",
               "--to-registry", "CHE01", "--to", che)  # fmt: skip
    assert final(network, "GHA01", over) == ("terminated", [Code.AUTHORIZATION_CAP_EXCEEDED.value])
    second = cli("GHA01", "authorize", *terms, "--cap", "500", "--version", "2")
    assert final(network, "GHA01", second) == ("completed", [])
    moved = cli("GHA01", "first-transfer", "--from", gha, "--serials", "1-400",
                "--to-registry", "CHE01", "--to", che)  # fmt: skip
    assert final(network, "GHA01", moved) == ("completed", [])
    below = cli("GHA01", "authorize", *terms, "--cap", "399", "--version", "3")
    assert final(network, "GHA01", below) == (
        "terminated", [Code.AUTHORIZATION_BELOW_FIRST_TRANSFERRED.value]
    )  # fmt: skip
    with network.admin() as admin:
        found = admin.GetAuthorization(
            admin_pb2.GetAuthorizationRequest(authorization_id="GHA-V"), timeout=10
        )
    assert [(v.authorization.version, v.authorization.quantity_cap) for v in found.versions] == [
        (1, 300), (2, 500)
    ]  # fmt: skip
    assert found.summary.first_transferred == 400
    entity = found.versions[0].authorization.authorized_entities[0]
    assert (entity.name, entity.country, entity.identification_number) == (
        "Volta Cookstoves Ltd", "GHA", "CS-2019-0042"
    )  # fmt: skip
    shown = admin_cli(network, "authorization", "GHA-V").splitlines()
    assert [line.split()[1] for line in shown[:2]] == ["v1", "v2"]
    assert shown[-1] == "first transferred 400"
    assert "GHA-V" in admin_cli(network, "authorizations", "--party", "GHA")
