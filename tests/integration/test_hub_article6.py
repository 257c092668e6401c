"""Authorization and first transfer at the hub (Article 6.2), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from article6.codes import Code
from article6.model import Status, UnitKind
from article6.v1 import transaction_pb2, units_pb2
from gateway.checks import Peer
from gateway.storage import ledger
from gateway.storage.records import get_authorization
from tests.builders import CHE_ACCOUNT, GHA_ACCOUNT, HubHarness, block, transaction

T = transaction_pb2
MO = {"unit_kind": units_pb2.UNIT_KIND_MITIGATION_OUTCOME, "cooperative_approach": "",
      "authorization_id": "", "first_transferring_party": "",
      "purpose": units_pb2.PURPOSE_UNSPECIFIED}  # fmt: skip
AUTHORIZED = {**MO, "cooperative_approach": "CA0001", "authorization_id": "GHA-A1",
              "purpose": units_pb2.PURPOSE_NDC}  # fmt: skip


def outcomes(first: int, last: int, **changes: Any) -> units_pb2.UnitBlock:
    return block(first, last, **{**MO, **changes})


def authorized(first: int, last: int, **changes: Any) -> units_pb2.UnitBlock:
    return block(first, last, **{**AUTHORIZED, **changes})


def grant(**changes: Any) -> T.Authorization:
    fields: dict[str, Any] = {
        "authorization_id": "GHA-A1", "authorizing_party": "GHA", "cooperative_approach": "CA0001",
        "purpose": units_pb2.PURPOSE_NDC, "quantity_cap": 600, "vintage_first": 2021,
        "vintage_last": 2025,
    }  # fmt: skip
    fields.update(changes)
    return T.Authorization(**fields)


def authorize(transaction_id: str, *blocks: units_pb2.UnitBlock, **changes: Any) -> T.Transaction:
    return transaction(
        transaction_id,
        T.TRANSACTION_TYPE_AUTHORIZATION,
        list(blocks),
        authorization=grant(**changes),
    )


def first_transfer(
    transaction_id: str,
    *blocks: units_pb2.UnitBlock,
    to: str = "CHE01",
    party: str = "GHA",
    trigger: int = T.FIRST_TRANSFER_TRIGGER_INTERNATIONAL_TRANSFER,
    sender: str = "GHA01",
    source: str = GHA_ACCOUNT,
) -> T.Transaction:
    message = transaction(
        transaction_id, T.TRANSACTION_TYPE_FIRST_TRANSFER, list(blocks), sender=sender,
        source=source, acquirer=to, target=CHE_ACCOUNT if to == "CHE01" else GHA_ACCOUNT,
    )  # fmt: skip
    message.first_transfer.first_transferring_party = party
    message.first_transfer.trigger = trigger  # type: ignore[assignment]
    return message


@pytest.fixture
def hub(hub_database_url: str) -> Iterator[HubHarness]:
    harness = HubHarness.create(hub_database_url)
    harness.peers["GHA01"] = Peer("GHA01", frozenset({"CA0001"}), False, "party")
    issue = transaction("GHA01-1", T.TRANSACTION_TYPE_ISSUANCE, [outcomes(1, 3000)], source="",
                        target=GHA_ACCOUNT)  # fmt: skip
    assert harness.propose(issue).status is Status.COMPLETED
    assert harness.propose(authorize("GHA01-2", outcomes(1, 1000))).status is Status.COMPLETED
    yield harness
    harness.close()


def held(hub: HubHarness, registry: str) -> list[tuple[int, int, UnitKind, str, str]]:
    blocks = hub.database.read_now(lambda c: ledger.blocks_of_registry(c, registry))
    return [
        (b.serial_first, b.serial_last, b.attributes.unit.unit_kind,
         b.attributes.unit.cooperative_approach, b.attributes.unit.first_transferring_party)
        for b in blocks
    ]  # fmt: skip


def test_an_authorization_binds_outcomes_and_is_recorded(hub: HubHarness) -> None:
    assert held(hub, "GHA01") == [
        (1, 1000, UnitKind.MITIGATION_OUTCOME, "CA0001", ""),
        (1001, 3000, UnitKind.MITIGATION_OUTCOME, "", ""),
    ]
    record = hub.database.read_now(lambda c: get_authorization(c, "GHA-A1"))
    assert record is not None
    assert (record.grant.quantity_cap, record.reserved, record.registry) == (600, 0, "GHA01")


def test_a_first_transfer_to_another_registry_makes_itmos_there(hub: HubHarness) -> None:
    assert hub.propose(first_transfer("GHA01-3", authorized(1, 500))).status is Status.CHECKED
    assert hub.decide("GHA01-3", Status.ACCEPTED).status is Status.COMPLETED
    assert held(hub, "CHE01") == [(1, 500, UnitKind.ITMO, "CA0001", "GHA")]
    assert held(hub, "GHA01")[0] == (501, 1000, UnitKind.MITIGATION_OUTCOME, "CA0001", "")
    again = first_transfer("CHE01-1", block(1, 10, authorization_id="GHA-A1"), to="CHE01",
                           sender="CHE01", source=CHE_ACCOUNT, party="CHE")  # fmt: skip
    assert [c for c, _ in hub.propose(again, sender="CHE01").results] == [
        Code.ALREADY_FIRST_TRANSFERRED
    ]


def test_the_cap_counts_pending_first_transfers_and_gets_refused_ones_back(
    hub: HubHarness,
) -> None:
    assert hub.propose(first_transfer("GHA01-3", authorized(1, 500))).status is Status.CHECKED
    over = hub.propose(first_transfer("GHA01-4", authorized(501, 601)))
    assert [c for c, _ in over.results] == [Code.AUTHORIZATION_CAP_EXCEEDED]
    assert hub.decide("GHA01-3", Status.REJECTED).status is Status.REJECTED
    assert hub.propose(first_transfer("GHA01-5", authorized(501, 1000))).status is Status.CHECKED


REFUSALS = [
    ("first transfer of unauthorized outcomes",
     lambda: first_transfer("GHA01-9", outcomes(1001, 1010)), Code.UNITS_NOT_AUTHORIZED),
    ("over the cap", lambda: first_transfer("GHA01-9", authorized(1, 601)),
     Code.AUTHORIZATION_CAP_EXCEEDED),
    ("another Party first transfers",
     lambda: first_transfer("GHA01-9", authorized(1, 10), party="CHE"),
     Code.FIRST_TRANSFERRING_PARTY_MISMATCH),
    ("NDC units first transferred on authorization",
     lambda: first_transfer("GHA01-9", authorized(1, 10),
                            trigger=T.FIRST_TRANSFER_TRIGGER_AUTHORIZATION),
     Code.FIRST_TRANSFER_TRIGGER_INVALID),
    ("an international transfer that stays home",
     lambda: first_transfer("GHA01-9", authorized(1, 10), to="GHA01"),
     Code.FIRST_TRANSFER_TRIGGER_INVALID),
    ("no trigger", lambda: first_transfer("GHA01-9", authorized(1, 10), trigger=0),
     Code.FIRST_TRANSFER_TRIGGER_INVALID),
    ("unknown authorization",
     lambda: first_transfer("GHA01-9", authorized(1, 10, authorization_id="GHA-X")),
     Code.AUTHORIZATION_UNKNOWN),
    ("vintage outside the window at authorization",
     lambda: authorize("GHA01-9", outcomes(1001, 1010), authorization_id="GHA-A2",
                       vintage_last=2023), Code.VINTAGE_OUTSIDE_AUTHORIZATION),
    ("authorization id reused", lambda: authorize("GHA01-9", outcomes(1001, 1010),
     quantity_cap=700), Code.AUTHORIZATION_ID_REUSED),
    ("outcomes already authorized",
     lambda: authorize("GHA01-9", authorized(1, 10), authorization_id="GHA-A2"),
     Code.UNITS_ALREADY_AUTHORIZED),
    ("ITMOs are not authorized again",
     lambda: authorize("GHA01-9", block(1001, 1010), authorization_id="GHA-A2"),
     Code.UNIT_KIND_NOT_ALLOWED),
    ("no authority for the cooperative approach",
     lambda: authorize("GHA01-9", outcomes(1001, 1010), authorization_id="GHA-A2",
                       cooperative_approach="CA0009"), Code.COOPERATIVE_APPROACH_NOT_AUTHORIZED),
    ("a cap below zero",
     lambda: authorize("GHA01-9", outcomes(1001, 1010), authorization_id="GHA-A2",
                       quantity_cap=-1), Code.QUANTITY_NOT_POSITIVE),
    ("outcomes issued already authorized",
     lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_ISSUANCE, [authorized(5001, 5010)],
                         source="", target=GHA_ACCOUNT), Code.UNITS_ALREADY_AUTHORIZED),
    ("A6.4ERs issued by a Party registry",
     lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_ISSUANCE,
                         [block(5001, 5010, unit_kind=units_pb2.UNIT_KIND_A64ER)], source="",
                         target=GHA_ACCOUNT), Code.UNIT_KIND_NOT_ALLOWED),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "code"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_each_article6_refusal_has_its_code_and_changes_nothing(
    hub: HubHarness, name: str, make: Any, code: Code
) -> None:
    before = hub.state()
    outcome = hub.propose(make())
    assert [c for c, _ in outcome.results] == [code], outcome.results
    assert hub.state() == before
    assert hub.status("GHA01-9") is Status.TERMINATED
