"""Authorizations as the CMA decided them, at the hub, on SQLite and PostgreSQL: versions that
change or revoke only what is not yet first transferred, the Party's first-transfer
definition, and ITMOs that come into being only at the first transfer it defines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from article6.codes import Code
from article6.model import Status, UnitKind, UnitState
from article6.v1 import transaction_pb2, units_pb2
from gateway.storage import ledger
from gateway.storage.records import authorization_versions, get_authorization
from tests.builders import CHE_ACCOUNT, GHA_ACCOUNT, HubHarness, block, transaction

T = transaction_pb2
MO: dict[str, Any] = {
    "unit_kind": units_pb2.UNIT_KIND_MITIGATION_OUTCOME, "cooperative_approach": "",
    "authorization_id": "", "first_transferring_party": "",
    "purpose": units_pb2.PURPOSE_UNSPECIFIED,
}  # fmt: skip
DEFINED = {
    "na": T.FIRST_TRANSFER_TRIGGER_UNSPECIFIED,
    "authorization": T.FIRST_TRANSFER_TRIGGER_AUTHORIZATION,
    "issuance": T.FIRST_TRANSFER_TRIGGER_ISSUANCE,
    "use": T.FIRST_TRANSFER_TRIGGER_USE_OR_CANCELLATION,
}


def grant(authorization_id: str, **changes: Any) -> T.Authorization:
    fields: dict[str, Any] = {
        "authorization_id": authorization_id, "authorizing_party": "GHA",
        "cooperative_approach": "CA0001", "purpose": units_pb2.PURPOSE_NDC, "quantity_cap": 500,
        "vintage_first": 2021, "vintage_last": 2030, "version": 1,
    }  # fmt: skip
    fields.update(changes)
    return T.Authorization(**fields)


def authorize(
    transaction_id: str, granted: T.Authorization, *blocks: units_pb2.UnitBlock
) -> T.Transaction:
    return transaction(
        transaction_id, T.TRANSACTION_TYPE_AUTHORIZATION, list(blocks),
        source=GHA_ACCOUNT if blocks else "", authorization=granted,
    )  # fmt: skip


def outcomes(first: int, last: int) -> units_pb2.UnitBlock:
    return block(first, last, **MO)


def bound(first: int, last: int, granted: T.Authorization) -> units_pb2.UnitBlock:
    return block(
        first, last, **{**MO, "cooperative_approach": granted.cooperative_approach,
                        "authorization_id": granted.authorization_id, "purpose": granted.purpose},
    )  # fmt: skip


def first_transfer(
    transaction_id: str, *blocks: units_pb2.UnitBlock, trigger: int = 1
) -> T.Transaction:
    return transaction(
        transaction_id, T.TRANSACTION_TYPE_FIRST_TRANSFER, list(blocks), acquirer="CHE01",
        target=CHE_ACCOUNT,
        first_transfer=T.FirstTransfer(first_transferring_party="GHA", trigger=trigger),  # type: ignore[arg-type]
    )  # fmt: skip


def itmos_issued(
    transaction_id: str, first: int, last: int, granted: T.Authorization
) -> T.Transaction:
    unit = block(
        first, last, authorization_id=granted.authorization_id, purpose=granted.purpose,
        cooperative_approach=granted.cooperative_approach,
    )  # fmt: skip
    return transaction(
        transaction_id, T.TRANSACTION_TYPE_ISSUANCE, [unit], source="", target=GHA_ACCOUNT,
        first_transfer=T.FirstTransfer(
            first_transferring_party="GHA", trigger=T.FIRST_TRANSFER_TRIGGER_ISSUANCE
        ),
    )  # fmt: skip


@pytest.fixture
def hub(hub_database_url: str) -> Iterator[HubHarness]:
    harness = HubHarness.create(hub_database_url)
    issue = transaction("GHA01-1", T.TRANSACTION_TYPE_ISSUANCE, [outcomes(1, 3000)], source="",
                        target=GHA_ACCOUNT)  # fmt: skip
    assert harness.propose(issue).status is Status.COMPLETED
    yield harness
    harness.close()


def codes(outcome: Any) -> list[Code]:
    return [code for code, _ in outcome.results]


def kinds(hub: HubHarness, registry: str) -> list[tuple[int, int, UnitKind, UnitState, str]]:
    blocks = hub.database.read_now(lambda c: ledger.blocks_of_registry(c, registry))
    return [
        (b.serial_first, b.serial_last, b.attributes.unit.unit_kind, b.attributes.unit.state,
         b.attributes.unit.first_transferring_party)
        for b in blocks
    ]  # fmt: skip


def reserved(hub: HubHarness, authorization_id: str) -> int:
    record = hub.database.read_now(lambda c: get_authorization(c, authorization_id))
    assert record is not None
    return record.reserved


def test_each_version_is_kept_and_the_current_one_rules(hub: HubHarness) -> None:
    v1 = grant("GHA-V", quantity_cap=300)
    assert hub.propose(authorize("GHA01-2", v1, outcomes(1, 1000))).status is Status.COMPLETED
    assert hub.propose(first_transfer("GHA01-3", bound(1, 200, v1))).status is Status.CHECKED
    hub.decide("GHA01-3", Status.ACCEPTED)
    # Version 2 raises the quantity and changes the timeframe of use: what is not yet first
    # transferred may move under the new terms.
    v2 = grant("GHA-V", quantity_cap=800, version=2, use_year_first=2026, use_year_last=2030)
    assert hub.propose(authorize("GHA01-4", v2)).status is Status.COMPLETED
    assert hub.propose(first_transfer("GHA01-5", bound(201, 700, v1))).status is Status.CHECKED
    hub.decide("GHA01-5", Status.ACCEPTED)
    assert reserved(hub, "GHA-V") == 700
    versions = hub.database.read_now(lambda c: authorization_versions(c, "GHA-V"))
    assert [(v.version, v.transaction_id) for v in versions] == [(1, "GHA01-2"), (2, "GHA01-4")]
    first = T.Authorization.FromString(versions[0].body)
    assert (first.quantity_cap, first.use_year_first) == (300, 0)  # as version 1 was sent
    record = hub.database.read_now(lambda c: get_authorization(c, "GHA-V"))
    assert record is not None
    assert (record.grant.version, record.grant.quantity_cap) == (2, 800)
    # More outcomes are bound under the current version by restating it, exactly.
    assert hub.propose(authorize("GHA01-6", v2, outcomes(1001, 1100))).status is Status.COMPLETED
    restated = grant("GHA-V", quantity_cap=900, version=2)
    assert codes(hub.propose(authorize("GHA01-7", restated, outcomes(1101, 1200)))) == [
        Code.AUTHORIZATION_VERSION_INVALID
    ]
    versions = hub.database.read_now(lambda c: authorization_versions(c, "GHA-V"))
    assert len(versions) == 2


def test_a_revocation_stops_what_is_not_yet_first_transferred(hub: HubHarness) -> None:
    v1 = grant("GHA-R")
    hub.propose(authorize("GHA01-2", v1, outcomes(1, 100)))
    assert hub.propose(first_transfer("GHA01-3", bound(1, 40, v1))).status is Status.CHECKED
    hub.decide("GHA01-3", Status.ACCEPTED)
    revoked = grant("GHA-R", version=2, revoked=True)
    assert hub.propose(authorize("GHA01-4", revoked)).status is Status.COMPLETED
    before = hub.state()
    assert codes(hub.propose(first_transfer("GHA01-5", bound(41, 50, v1)))) == [
        Code.AUTHORIZATION_REVOKED
    ]
    assert codes(hub.propose(authorize("GHA01-6", grant("GHA-R", version=3)))) == [
        Code.AUTHORIZATION_REVOKED
    ]
    assert hub.state() == before
    # What was first transferred stays as it is.
    assert kinds(hub, "CHE01") == [(1, 40, UnitKind.ITMO, UnitState.HELD, "GHA")]


VERSION_REFUSALS = [
    ("a version skipped", lambda: grant("GHA-V", version=3), Code.AUTHORIZATION_VERSION_INVALID),
    ("a version of an unknown authorization", lambda: grant("GHA-X", version=2),
     Code.AUTHORIZATION_UNKNOWN),
    ("version 1 again", lambda: grant("GHA-V"), Code.AUTHORIZATION_ID_REUSED),
    ("the purpose changed", lambda: grant("GHA-V", version=2,
     purpose=units_pb2.PURPOSE_NDC_AND_OIMP, first_transfer_definition=DEFINED["use"]),
     Code.AUTHORIZATION_TERMS_FIXED),
    ("the approach changed", lambda: grant("GHA-V", version=2, cooperative_approach="CA0002"),
     Code.COOPERATIVE_APPROACH_NOT_AUTHORIZED),
    ("below what was first transferred", lambda: grant("GHA-V", version=2, quantity_cap=99),
     Code.AUTHORIZATION_BELOW_FIRST_TRANSFERRED),
    ("OIMP with no definition", lambda: grant("GHA-N", purpose=units_pb2.PURPOSE_OIMP),
     Code.FIRST_TRANSFER_TRIGGER_INVALID),
    ("NDC with an OIMP definition", lambda: grant("GHA-N",
     first_transfer_definition=DEFINED["use"]), Code.FIRST_TRANSFER_TRIGGER_INVALID),
    ("vintages before 2021", lambda: grant("GHA-N", vintage_first=2020),
     Code.VINTAGE_BEFORE_ARTICLE6),
    ("an entity without its number", lambda: grant("GHA-N", authorized_entities=[
     T.AuthorizedEntity(name="Acme", country="GHA")]), Code.AUTHORIZED_ENTITY_INVALID),
    ("an entity of no country", lambda: grant("GHA-N", authorized_entities=[
     T.AuthorizedEntity(name="Acme", country="Ghana", identification_number="CS-1")]),
     Code.AUTHORIZED_ENTITY_INVALID),
    ("another Party's authorization", lambda: grant("GHA-N", authorizing_party="CHE"),
     Code.PARTY_NOT_OF_REGISTRY),
    ("a timeframe of use backwards", lambda: grant("GHA-N", use_year_first=2030,
     use_year_last=2026), Code.VINTAGE_INVALID),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "make", "code"), VERSION_REFUSALS, ids=[r[0] for r in VERSION_REFUSALS]
)
def test_each_refused_version_has_its_code_and_changes_nothing(
    hub: HubHarness, name: str, make: Any, code: Code
) -> None:
    v1 = grant("GHA-V")
    hub.propose(authorize("GHA01-2", v1, outcomes(1, 1000)))
    hub.propose(first_transfer("GHA01-3", bound(1, 100, v1)))
    hub.decide("GHA01-3", Status.ACCEPTED)
    before = hub.state()
    outcome = hub.propose(authorize("GHA01-9", make()))
    assert codes(outcome) == [code], outcome.results
    assert outcome.status is Status.CHECKED_DISCREPANCY
    assert hub.state() == before


def test_a_version_comes_only_from_the_registry_that_recorded_it(hub: HubHarness) -> None:
    hub.propose(authorize("GHA01-2", grant("GHA-V")))
    hub.peers["CHE01"] = hub.peers["CHE01"].__class__(
        "CHE01", frozenset({"CA0001"}), False, party="GHA"
    )  # a registry claiming GHA's authority
    other = transaction(
        "CHE01-1", T.TRANSACTION_TYPE_AUTHORIZATION, [], sender="CHE01", source="",
        authorization=grant("GHA-V", version=2),
    )  # fmt: skip
    assert codes(hub.propose(other, sender="CHE01")) == [Code.AUTHORIZATION_VERSION_INVALID]


def test_first_transfer_by_authorization_makes_itmos_as_it_binds(hub: HubHarness) -> None:
    granted = grant(
        "GHA-AU", purpose=units_pb2.PURPOSE_OIMP,
        first_transfer_definition=DEFINED["authorization"], quantity_cap=150,
    )  # fmt: skip
    assert codes(hub.propose(authorize("GHA01-2", granted, outcomes(1, 200)))) == [
        Code.AUTHORIZATION_CAP_EXCEEDED
    ]
    assert hub.propose(authorize("GHA01-3", granted, outcomes(1, 150))).status is Status.COMPLETED
    assert kinds(hub, "GHA01")[0] == (1, 150, UnitKind.ITMO, UnitState.HELD, "GHA")
    assert reserved(hub, "GHA-AU") == 150


def test_first_transfer_by_use_is_the_use_itself(hub: HubHarness) -> None:
    granted = grant(
        "GHA-US", purpose=units_pb2.PURPOSE_OIMP, first_transfer_definition=DEFINED["use"]
    )
    hub.propose(authorize("GHA01-2", granted, outcomes(1, 100)))
    use = T.UseDetails(using_party="GHA", purpose=units_pb2.PURPOSE_OIMP, entity="An airline")
    plain = transaction("GHA01-3", T.TRANSACTION_TYPE_USE, [bound(1, 10, granted)], use=use)
    assert codes(hub.propose(plain)) == [Code.NOT_YET_FIRST_TRANSFERRED]
    by_use = T.FirstTransfer(
        first_transferring_party="GHA", trigger=T.FIRST_TRANSFER_TRIGGER_USE_OR_CANCELLATION
    )
    first = transaction(
        "GHA01-4", T.TRANSACTION_TYPE_USE, [bound(1, 10, granted)], use=use, first_transfer=by_use
    )
    assert hub.propose(first).status is Status.COMPLETED
    assert kinds(hub, "GHA01")[0] == (1, 10, UnitKind.ITMO, UnitState.USED, "GHA")
    assert reserved(hub, "GHA-US") == 10
    # Not an event this authorization defines: a first international transfer.
    refused = hub.propose(first_transfer("GHA01-5", bound(11, 20, granted)))
    assert codes(refused) == [Code.FIRST_TRANSFER_TRIGGER_INVALID]


def test_itmos_are_issued_only_as_the_first_transfer_defined_as_issuance(hub: HubHarness) -> None:
    at_issuance = grant(
        "GHA-IS", purpose=units_pb2.PURPOSE_OIMP, first_transfer_definition=DEFINED["issuance"],
        quantity_cap=100,
    )  # fmt: skip
    ndc_only = grant("GHA-ND")
    for number, granted in ((2, at_issuance), (3, ndc_only)):
        assert hub.propose(authorize(f"GHA01-{number}", granted)).status is Status.COMPLETED
    assert codes(hub.propose(itmos_issued("GHA01-4", 5001, 5010, ndc_only))) == [
        Code.FIRST_TRANSFER_TRIGGER_INVALID
    ]
    assert codes(hub.propose(itmos_issued("GHA01-5", 5001, 5101, at_issuance))) == [
        Code.AUTHORIZATION_CAP_EXCEEDED
    ]
    assert hub.propose(itmos_issued("GHA01-6", 5001, 5100, at_issuance)).status is Status.COMPLETED
    assert (5001, 5100, UnitKind.ITMO, UnitState.HELD, "GHA") in kinds(hub, "GHA01")
    assert reserved(hub, "GHA-IS") == 100
    # Outcomes already issued can never be first transferred under it: not bound.
    assert codes(hub.propose(authorize("GHA01-7", grant("GHA-I2", purpose=units_pb2.PURPOSE_OIMP,
                 first_transfer_definition=DEFINED["issuance"]), outcomes(1, 10)))) == [
        Code.FIRST_TRANSFER_TRIGGER_INVALID
    ]  # fmt: skip


def test_outcomes_leave_their_registry_only_by_first_transfer(hub: HubHarness) -> None:
    granted = grant("GHA-NT")
    hub.propose(authorize("GHA01-2", granted, outcomes(1, 100)))
    moved = transaction(
        "GHA01-3", T.TRANSACTION_TYPE_EXTERNAL_TRANSFER, [bound(1, 10, granted)],
        acquirer="CHE01", target=CHE_ACCOUNT,
    )  # fmt: skip
    assert codes(hub.propose(moved)) == [Code.NOT_YET_FIRST_TRANSFERRED]
    by_issuance = first_transfer("GHA01-4", bound(1, 10, granted), trigger=3)
    assert codes(hub.propose(by_issuance)) == [Code.FIRST_TRANSFER_TRIGGER_INVALID]


def test_a_use_outside_the_timeframe_of_use_is_refused(hub: HubHarness) -> None:
    granted = grant("GHA-TF", use_year_first=2026, use_year_last=2030)
    hub.propose(authorize("GHA01-2", granted, outcomes(1, 100)))
    hub.propose(first_transfer("GHA01-3", bound(1, 50, granted)))
    hub.decide("GHA01-3", Status.ACCEPTED)
    itmos = block(1, 10, authorization_id="GHA-TF", purpose=units_pb2.PURPOSE_NDC)
    for year, expected in ((2031, [Code.USE_OUTSIDE_AUTHORIZATION]), (2030, [])):
        use = T.UseDetails(using_party="CHE", year_of_use=year, purpose=units_pb2.PURPOSE_NDC)
        proposed = transaction(
            f"CHE01-{year}", T.TRANSACTION_TYPE_USE, [itmos], sender="CHE01", source=CHE_ACCOUNT,
            use=use,
        )  # fmt: skip
        assert codes(hub.propose(proposed, sender="CHE01")) == expected
