"""The mechanism registry at the hub: A6.4ERs recorded with the host Party's authorization,
then first transferred as ITMOs (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from article6.codes import Code
from article6.identifiers import format_account_id
from article6.model import Status, UnitKind
from article6.v1 import transaction_pb2, units_pb2
from gateway.checks import Peer
from gateway.storage import ledger
from gateway.storage.records import get_authorization
from tests.builders import CHE_ACCOUNT, HubHarness, block, transaction

T = transaction_pb2
MECH = "A64MR"
PENDING = format_account_id(MECH, 1)


def aer(first: int, last: int, **changes: Any) -> units_pb2.UnitBlock:
    fields: dict[str, Any] = {
        "space": MECH, "cooperative_approach": "CA6400", "first_transferring_party": "",
        "authorization_id": "GHA-A64-1", "unit_kind": units_pb2.UNIT_KIND_A64ER,
        "purpose": units_pb2.PURPOSE_NDC,
        "activity_id": "A64-GHA-0001", "host_party": "GHA", "vintage": 2025,
    }  # fmt: skip
    fields.update(changes)
    return block(first, last, **fields)


def grant(**changes: Any) -> T.Authorization:
    fields: dict[str, Any] = {
        "authorization_id": "GHA-A64-1", "authorizing_party": "GHA",
        "cooperative_approach": "CA6400", "purpose": units_pb2.PURPOSE_NDC,
        "vintage_first": 2025, "vintage_last": 2025,
    }  # fmt: skip
    fields.update(changes)
    return T.Authorization(**fields)


def record(transaction_id: str, *blocks: units_pb2.UnitBlock, **changes: Any) -> T.Transaction:
    fields: dict[str, Any] = {"authorization": grant()}
    fields.update(changes)
    return transaction(
        transaction_id, T.TRANSACTION_TYPE_ISSUANCE, list(blocks), sender=MECH, source="",
        target=PENDING, **fields,
    )  # fmt: skip


def first_transfer(transaction_id: str, *blocks: units_pb2.UnitBlock) -> T.Transaction:
    message = transaction(
        transaction_id, T.TRANSACTION_TYPE_FIRST_TRANSFER, list(blocks), sender=MECH,
        source=PENDING, acquirer="CHE01", target=CHE_ACCOUNT,
    )  # fmt: skip
    message.first_transfer.first_transferring_party = "GHA"
    message.first_transfer.trigger = T.FIRST_TRANSFER_TRIGGER_INTERNATIONAL_TRANSFER
    return message


@pytest.fixture
def hub(hub_database_url: str) -> Iterator[HubHarness]:
    harness = HubHarness.create(hub_database_url)
    harness.peers[MECH] = Peer(MECH, frozenset({"CA6400"}), False, "mechanism")
    yield harness
    harness.close()


def test_aers_are_recorded_with_their_authorization_then_become_itmos(hub: HubHarness) -> None:
    assert hub.propose(record("A64MR-1", aer(1, 930)), MECH).status is Status.COMPLETED
    granted = hub.database.read_now(lambda c: get_authorization(c, "GHA-A64-1"))
    assert granted is not None
    assert (granted.registry, granted.grant.authorizing_party) == (MECH, "GHA")
    # A second issuance under the same authorization, same terms: accepted, recorded once.
    assert hub.propose(record("A64MR-2", aer(931, 1000)), MECH).status is Status.COMPLETED
    assert hub.propose(first_transfer("A64MR-3", aer(1, 1000)), MECH).status is Status.CHECKED
    assert hub.decide("A64MR-3", Status.ACCEPTED).status is Status.COMPLETED
    arrived = hub.database.read_now(lambda c: ledger.blocks_of_registry(c, "CHE01"))
    units = [(b.serial_first, b.serial_last, b.attributes.unit.unit_kind,
              b.attributes.unit.first_transferring_party, b.attributes.unit.activity_id)
             for b in arrived]  # fmt: skip
    assert units == [(1, 1000, UnitKind.ITMO, "GHA", "A64-GHA-0001")]


@pytest.mark.parametrize(
    ("name", "sender", "make", "code"),
    [
        ("A6.4ERs from a Party registry", "GHA01",
         lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_ISSUANCE, [aer(1, 5, space="GHA01")],
                             source="", target=format_account_id("GHA01", 1)),
         Code.UNIT_KIND_NOT_ALLOWED),
        ("no authorization", MECH,
         lambda: transaction("A64MR-9", T.TRANSACTION_TYPE_ISSUANCE, [aer(1, 5)], sender=MECH,
                             source="", target=PENDING),
         Code.A64ER_NOT_AUTHORIZED),
        ("authorized by another Party than the host", MECH,
         lambda: record("A64MR-9", aer(1, 5), authorization=grant(authorizing_party="CHE")),
         Code.A64ER_NOT_AUTHORIZED),
        ("units bound to another authorization", MECH,
         lambda: record("A64MR-9", aer(1, 5, authorization_id="GHA-OTHER")),
         Code.A64ER_NOT_AUTHORIZED),
        ("vintage outside the authorization", MECH,
         lambda: record("A64MR-9", aer(1, 5, vintage=2024)),
         Code.VINTAGE_OUTSIDE_AUTHORIZATION),
        ("a cooperative approach not the mechanism's", MECH,
         lambda: record("A64MR-9", aer(1, 5, cooperative_approach="CA0001"),
                        authorization=grant(cooperative_approach="CA0001")),
         Code.COOPERATIVE_APPROACH_NOT_AUTHORIZED),
    ],
)  # fmt: skip
def test_each_mechanism_refusal_has_its_code_and_changes_nothing(
    hub: HubHarness, name: str, sender: str, make: Any, code: Code
) -> None:
    before = hub.state()
    outcome = hub.propose(make(), sender)
    assert [c for c, _ in outcome.results] == [code], outcome.results
    assert hub.state() == before


def test_an_authorization_is_never_recorded_with_other_terms(hub: HubHarness) -> None:
    assert hub.propose(record("A64MR-1", aer(1, 10)), MECH).status is Status.COMPLETED
    other = record("A64MR-2", aer(11, 20, purpose=units_pb2.PURPOSE_OIMP),
                   authorization=grant(purpose=units_pb2.PURPOSE_OIMP))  # fmt: skip
    outcome = hub.propose(other, MECH)
    assert [c for c, _ in outcome.results] == [Code.AUTHORIZATION_ID_REUSED]
    again = hub.propose(record("A64MR-3", aer(1, 10)), MECH)
    assert [c for c, _ in again.results] == [Code.SERIALS_ALREADY_ISSUED]
