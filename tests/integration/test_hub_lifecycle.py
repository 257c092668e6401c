"""The hub's transaction lifecycle and ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select

from article6.codes import Code
from article6.model import Status, UnitState
from article6.outbox import OutboxMessage
from article6.v1 import transaction_pb2, units_pb2
from gateway.lifecycle import Outcome
from gateway.storage import audit, ledger
from gateway.storage.records import get_transactions, history
from gateway.storage.schema import outbox
from tests.builders import (
    CHE_ACCOUNT,
    FIRST_TRANSFER_AT_ISSUANCE,
    GHA_ACCOUNT,
    GHA_OTHER,
    HubHarness,
    block,
    external,
    issuance,
    transaction,
)

T = transaction_pb2
XFER = T.TRANSACTION_TYPE_EXTERNAL_TRANSFER


@pytest.fixture
def hub(hub_database_url: str) -> Iterator[HubHarness]:
    harness = HubHarness.create(hub_database_url)
    yield harness
    harness.close()


def holdings(hub: HubHarness, registry: str) -> list[tuple[str, int, int, UnitState]]:
    blocks = hub.database.read_now(lambda c: ledger.blocks_of_registry(c, registry))
    return [
        (b.attributes.holder.account_id, b.serial_first, b.serial_last, b.attributes.unit.state)
        for b in blocks
    ]


def test_an_issuance_completes_at_once_into_the_ledger(hub: HubHarness) -> None:
    outcome = hub.propose(issuance("GHA01-1", 1, 10**9))
    assert (outcome.status, outcome.results) == (Status.COMPLETED, [])
    assert holdings(hub, "GHA01") == [(GHA_ACCOUNT, 1, 10**9, UnitState.HELD)]
    assert hub.outbox_to("GHA01") == ["article6.v1.StatusNotice"]


def test_an_acceptance_records_both_steps_in_one_status_change(hub: HubHarness) -> None:
    hub.propose(issuance("GHA01-1", 1, 1000))
    hub.propose(external("GHA01-2", 1, 250))
    assert hub.decide("GHA01-2", Status.ACCEPTED).status is Status.COMPLETED
    steps = hub.database.read_now(lambda c: history(c, "GHA01-2"))
    assert [status for status, _, _ in steps] == [
        Status.PROPOSED, Status.CHECKED, Status.ACCEPTED, Status.COMPLETED
    ]  # fmt: skip
    changes = hub.database.read_now(
        lambda c: [
            (entry.detail["previous"], entry.detail["status"])
            for entry, _ in audit.entries(c)
            if entry.subject == "GHA01-2" and entry.action == "transaction.status"
        ]
    )
    assert changes == [
        (Status.CHECKED.value, Status.ACCEPTED.value),
        (Status.ACCEPTED.value, Status.COMPLETED.value),
    ]


def test_transactions_read_together_are_those_read_one_by_one(hub: HubHarness) -> None:
    """One statement for many ids (an array on PostgreSQL, JSON on SQLite): the recorded
    ones, each as read alone; ids never recorded or not storable are simply absent."""
    hub.propose(issuance("GHA01-1", 1, 1000))
    for n in range(2, 5):
        hub.propose(external(f"GHA01-{n}", 10 * n, 10 * n + 9))
    wanted = ["GHA01-3", "GHA01-1", "GHA01-9", "x" * 41, "GHA01-4", "GHA01-3", "it's"]
    found = hub.database.read_now(lambda c: get_transactions(c, wanted))
    alone = {}
    for i in wanted:
        alone.update(hub.database.read_now(partial(get_transactions, transaction_ids=[i])))
    assert sorted(found) == ["GHA01-1", "GHA01-3", "GHA01-4"]
    assert found == alone


def test_an_external_transfer_locks_then_completes_with_a_split(hub: HubHarness) -> None:
    hub.propose(issuance("GHA01-1", 1, 1000))
    outcome = hub.propose(external("GHA01-2", 1, 250))
    assert outcome.status is Status.CHECKED
    assert hub.outbox_to("CHE01") == ["article6.v1.AcquisitionRequest"]
    assert holdings(hub, "GHA01") == [(GHA_ACCOUNT, 1, 1000, UnitState.HELD)]  # not yet
    assert hub.decide("GHA01-2", Status.ACCEPTED).status is Status.COMPLETED
    assert holdings(hub, "GHA01") == [(GHA_ACCOUNT, 251, 1000, UnitState.HELD)]
    assert holdings(hub, "CHE01") == [(CHE_ACCOUNT, 1, 250, UnitState.HELD)]
    assert hub.state()["locks"] == []
    assert hub.outbox_to("CHE01").count("article6.v1.StatusNotice") == 1
    assert hub.outbox_to("GHA01").count("article6.v1.StatusNotice") == 2  # issuance, transfer


def test_a_transfer_the_acquirer_rejects_releases_the_units(hub: HubHarness) -> None:
    hub.propose(issuance("GHA01-1", 1, 1000))
    hub.propose(external("GHA01-2", 1, 250))
    assert hub.decide("GHA01-2", Status.REJECTED).status is Status.REJECTED
    assert hub.status("GHA01-2") is Status.REJECTED  # DES 6: the acquirer's refusal, final
    assert holdings(hub, "GHA01") == [(GHA_ACCOUNT, 1, 1000, UnitState.HELD)]
    assert hub.state()["locks"] == []
    assert hub.propose(external("GHA01-3", 1, 250)).status is Status.CHECKED


def test_a_transfer_with_no_answer_is_cancelled_and_its_units_released(hub: HubHarness) -> None:
    hub.propose(issuance("GHA01-1", 1, 1000))
    hub.propose(external("GHA01-2", 1, 250))
    later = hub.now + timedelta(seconds=61)
    cancelled = hub.database.write_now(lambda unit: hub.lifecycle.cancel_expired(unit, later))
    assert cancelled == [("GHA01-2", "CHE01")]
    assert hub.status("GHA01-2") is Status.CANCELLED
    assert hub.state()["locks"] == []
    states = hub.database.read_now(
        lambda c: c.exec_driver_sql("SELECT payload_type, state FROM outbox").all()
    )
    assert ("article6.v1.AcquisitionRequest", "obsolete") in [tuple(s) for s in states]
    assert hub.outbox_to("CHE01").count("article6.v1.StatusNotice") == 1


def test_a_final_status_never_changes(hub: HubHarness) -> None:
    hub.propose(issuance("GHA01-1", 1, 1000))
    hub.propose(external("GHA01-2", 1, 250))
    hub.decide("GHA01-2", Status.REJECTED)
    before = hub.state()
    outcome = hub.decide("GHA01-2", Status.ACCEPTED)
    assert outcome.status is Status.REJECTED
    assert [code for code, _ in outcome.results] == [Code.TRANSACTION_ALREADY_FINAL]
    assert hub.state() == before


@pytest.mark.parametrize(
    ("kind", "target", "state"),
    [
        (T.TRANSACTION_TYPE_INTERNAL_TRANSFER, GHA_OTHER, UnitState.HELD),
        (T.TRANSACTION_TYPE_CANCELLATION, "", UnitState.CANCELLED),
        (T.TRANSACTION_TYPE_VOLUNTARY_CANCELLATION, GHA_OTHER, UnitState.CANCELLED),
    ],
)
def test_single_registry_transactions_complete_at_once(
    hub: HubHarness, kind: int, target: str, state: UnitState
) -> None:
    hub.propose(issuance("GHA01-1", 1, 1000))
    # A voluntary cancellation names the cancelling Party and its purpose (AEF Table 3).
    cancelling = T.UseDetails(using_party="GHA", purpose=units_pb2.PURPOSE_OIMP)
    details: dict[str, Any] = (
        {"use": cancelling} if kind == T.TRANSACTION_TYPE_VOLUNTARY_CANCELLATION else {}
    )
    proposed = transaction("GHA01-2", kind, [block(101, 200)], target=target, **details)
    outcome = hub.propose(proposed)
    assert (outcome.status, outcome.results) == (Status.COMPLETED, [])
    assert (target or GHA_ACCOUNT, 101, 200, state) in holdings(hub, "GHA01")


def test_a_use_towards_an_ndc_marks_the_units_used(hub: HubHarness) -> None:
    hub.propose(issuance("GHA01-1", 1, 1000))
    use = T.UseDetails(using_party="GHA", year_of_use=2030, purpose=units_pb2.PURPOSE_NDC)
    outcome = hub.propose(
        transaction("GHA01-2", T.TRANSACTION_TYPE_USE, [block(1, 100)], target=GHA_OTHER, use=use)
    )
    assert outcome.status is Status.COMPLETED
    assert (GHA_OTHER, 1, 100, UnitState.USED) in holdings(hub, "GHA01")
    used_again = transaction(
        "GHA01-3", T.TRANSACTION_TYPE_USE, [block(1, 100)], source=GHA_OTHER, use=use
    )
    assert [c for c, _ in hub.propose(used_again).results] == [Code.UNITS_NOT_HELD_STATE]


def test_blocks_merge_back_when_they_meet_again(hub: HubHarness) -> None:
    hub.propose(issuance("GHA01-1", 1, 1000))
    hub.propose(transaction("GHA01-2", T.TRANSACTION_TYPE_INTERNAL_TRANSFER, [block(1, 500)],
                            target=GHA_OTHER))  # fmt: skip
    back = transaction("GHA01-3", T.TRANSACTION_TYPE_INTERNAL_TRANSFER, [block(1, 500)],
                       source=GHA_OTHER, target=GHA_ACCOUNT)  # fmt: skip
    assert hub.propose(back).status is Status.COMPLETED
    assert holdings(hub, "GHA01") == [(GHA_ACCOUNT, 1, 1000, UnitState.HELD)]


Mutation = Callable[[], transaction_pb2.Transaction]


def out(*blocks: units_pb2.UnitBlock, **changes: Any) -> transaction_pb2.Transaction:
    """A transfer GHA01-9 of ``blocks`` to CHE01, with ``changes``."""
    return transaction(
        "GHA01-9", XFER, list(blocks), acquirer="CHE01", target=CHE_ACCOUNT, **changes
    )


USE = T.UseDetails(using_party="GHA", year_of_use=2030, purpose=units_pb2.PURPOSE_NDC)
REFUSALS: list[tuple[str, Mutation, Code]] = [
    ("no blocks", lambda: out(quantity=10), Code.REQUIRED_FIELD_MISSING),
    ("zero quantity", lambda: external("GHA01-9", 1, 10, quantity=0), Code.QUANTITY_NOT_POSITIVE),
    ("negative quantity", lambda: external("GHA01-9", 1, 10, quantity=-5),
     Code.QUANTITY_NOT_POSITIVE),
    ("quantity not the sum", lambda: external("GHA01-9", 1, 10, quantity=11),
     Code.QUANTITY_MISMATCH),
    ("serials backwards", lambda: out(block(10, 1), quantity=1), Code.SERIAL_RANGE_INVALID),
    ("overlapping blocks", lambda: out(block(1, 10), block(5, 20)), Code.BLOCKS_OVERLAP),
    ("too many blocks", lambda: out(*(block(i, i) for i in range(10_001))),
     Code.TOO_MANY_BLOCKS),
    ("bad originating registry", lambda: out(block(1, 10, space="gha-1")),
     Code.REGISTRY_ID_INVALID),
    ("two-digit vintage", lambda: out(block(1, 10, vintage=24)), Code.VINTAGE_INVALID),
    ("bad cooperative approach", lambda: out(block(1, 10, cooperative_approach="X1")),
     Code.COOPERATIVE_APPROACH_ID_INVALID),
    ("bad Party code", lambda: out(block(1, 10, first_transferring_party="GH")),
     Code.PARTY_CODE_INVALID),
    ("unit kind unset", lambda: out(block(1, 10, unit_kind=0)), Code.UNIT_KIND_INVALID),
    ("units proposed as used", lambda: out(block(1, 10, state=units_pb2.UNIT_STATE_USED)),
     Code.UNIT_STATE_INVALID),
    ("type unset", lambda: external("GHA01-9", 1, 10, type=0), Code.TRANSACTION_TYPE_UNSUPPORTED),
    ("id of another registry", lambda: external("CHE01-9", 1, 10), Code.TRANSACTION_ID_INVALID),
    ("id reused", lambda: external("GHA01-1", 1, 10), Code.TRANSACTION_ID_REUSED),
    ("another registry's units", lambda: external("GHA01-9", 1, 10, transferring_registry="CHE01"),
     Code.REGISTRY_NOT_PARTY_TO_UNITS),
    ("bad check digits", lambda: external("GHA01-9", 1, 10, acquiring_account="CHE01-1001-00"),
     Code.ACCOUNT_ID_INVALID),
    ("account of another registry", lambda: external("GHA01-9", 1, 10, acquiring_account=GHA_OTHER),
     Code.ACCOUNT_ID_INVALID),
    ("unknown acquirer", lambda: external("GHA01-9", 1, 10, acquiring_registry="XYZ01"),
     Code.ACQUIRING_REGISTRY_UNKNOWN),
    ("transfer to itself", lambda: external("GHA01-9", 1, 10, acquiring_registry="GHA01",
     acquiring_account=GHA_OTHER), Code.ACQUIRING_REGISTRY_SAME),
    ("suspended acquirer", lambda: external("GHA01-9", 1, 10, acquiring_registry="SUS01",
     acquiring_account="SUS01-1-00"), Code.ACQUIRING_REGISTRY_SUSPENDED),
    ("internal transfer out", lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_INTERNAL_TRANSFER,
     [block(1, 10)], acquirer="CHE01", target=CHE_ACCOUNT), Code.ACQUIRING_REGISTRY_MISMATCH),
    ("units not issued", lambda: external("GHA01-9", 5000, 5010), Code.UNITS_NOT_HELD),
    ("units of another account", lambda: external("GHA01-9", 1, 10, transferring_account=GHA_OTHER),
     Code.UNITS_NOT_HELD),
    ("attributes differ", lambda: out(block(1, 10, vintage=2023)), Code.UNITS_NOT_HELD),
    ("units locked", lambda: external("GHA01-9", 900, 950), Code.UNITS_LOCKED),
    ("units already cancelled", lambda: external("GHA01-9", 981, 990), Code.UNITS_NOT_HELD_STATE),
    ("issuance of existing serials", lambda: issuance("GHA01-9", 500, 2000),
     Code.SERIALS_ALREADY_ISSUED),
    ("issuance of another's units", lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_ISSUANCE,
     [block(1, 10, space="CHE01")], source="", target=GHA_ACCOUNT),
     Code.REGISTRY_NOT_PARTY_TO_UNITS),
    ("issuance without authority", lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_ISSUANCE,
     [block(5000, 5010, cooperative_approach="CA0009")], source="", target=GHA_ACCOUNT,
     first_transfer=FIRST_TRANSFER_AT_ISSUANCE), Code.COOPERATIVE_APPROACH_NOT_AUTHORIZED),
    ("use without details", lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_USE, [block(1, 10)]),
     Code.USE_DETAILS_INVALID),
    ("NDC use without a year", lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_USE,
     [block(1, 10)], use=T.UseDetails(using_party="GHA", purpose=units_pb2.PURPOSE_NDC)),
     Code.USE_DETAILS_INVALID),
    ("use for a purpose that is no use", lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_USE,
     [block(1, 10)], use=T.UseDetails(using_party="GHA", purpose=units_pb2.PURPOSE_NDC_AND_OIMP)),
     Code.USE_DETAILS_INVALID),
    ("use by another Party", lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_USE,
     [block(1, 10)], use=T.UseDetails(using_party="CHE", year_of_use=2030,
     purpose=units_pb2.PURPOSE_NDC)), Code.PARTY_NOT_OF_REGISTRY),
    ("voluntary cancellation without its Party", lambda: transaction("GHA01-9",
     T.TRANSACTION_TYPE_VOLUNTARY_CANCELLATION, [block(1, 10)]), Code.USE_DETAILS_INVALID),
    ("ITMOs minted", lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_ISSUANCE,
     [block(5000, 5010)], source="", target=GHA_ACCOUNT), Code.ITMO_ISSUANCE_NOT_FIRST_TRANSFER),
    ("outcomes before 2021", lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_ISSUANCE,
     [block(5000, 5010, vintage=2020, unit_kind=units_pb2.UNIT_KIND_MITIGATION_OUTCOME,
            cooperative_approach="", authorization_id="", first_transferring_party="",
            purpose=units_pb2.PURPOSE_UNSPECIFIED)], source="", target=GHA_ACCOUNT),
     Code.VINTAGE_BEFORE_ARTICLE6),
    ("use by a bad Party code", lambda: transaction("GHA01-9", T.TRANSACTION_TYPE_USE,
     [block(1, 10)], use=T.UseDetails(using_party="gh", year_of_use=2030,
     purpose=units_pb2.PURPOSE_NDC)), Code.PARTY_CODE_INVALID),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "code"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_each_refusal_has_its_code_and_changes_nothing(
    hub: HubHarness, name: str, make: Mutation, code: Code
) -> None:
    hub.propose(issuance("GHA01-1", 1, 1000))
    hub.propose(external("GHA01-2", 900, 950))  # locks 900-950
    cancel = transaction("GHA01-3", T.TRANSACTION_TYPE_CANCELLATION, [block(981, 990)])
    assert hub.propose(cancel).status is Status.COMPLETED
    before = hub.state()
    outcome = hub.propose(make())
    assert [c for c, _ in outcome.results] == [code], outcome.results
    assert not outcome.accepted
    assert hub.state() == before
    recorded = hub.status(outcome.transaction_id)
    if code in {Code.TRANSACTION_ID_INVALID, Code.TRANSACTION_ID_REUSED}:
        assert recorded in {None, Status.COMPLETED}  # nothing new recorded
    else:  # DES: the hub answers 3 (checked, discrepancy); the transaction ends 5
        assert outcome.status is Status.CHECKED_DISCREPANCY
        assert recorded is Status.TERMINATED


def race(hub: HubHarness, transaction_ids: list[str], first: int, last: int) -> list[Outcome]:
    """Propose the same serials under each id at the same instant, each on its own thread."""
    barrier = threading.Barrier(len(transaction_ids))
    outcomes: list[Outcome] = []

    def spend(transaction_id: str) -> None:
        barrier.wait()
        outcomes.append(hub.propose(external(transaction_id, first, last)))

    threads = [threading.Thread(target=spend, args=(tid,)) for tid in transaction_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_concurrent_spends_of_one_block_let_exactly_one_through(hub: HubHarness) -> None:
    """Two writers on separate connections (as two hub processes would be), racing."""
    hub.propose(issuance("GHA01-1", 1, 10_000))
    for round_number in range(10):
        ids = [f"GHA01-{round_number * 2 + 10 + i}" for i in range(2)]
        outcomes = race(hub, ids, round_number * 100 + 1, round_number * 100 + 50)
        statuses = sorted(o.status.name for o in outcomes if o.status)
        assert statuses == ["CHECKED", "CHECKED_DISCREPANCY"]
        [refused] = [o for o in outcomes if o.status is Status.CHECKED_DISCREPANCY]
        assert [code for code, _ in refused.results] == [Code.UNITS_LOCKED]


def test_a_delivering_process_is_handed_each_message_once_committed_and_claimed(
    hub: HubHarness,
) -> None:
    assert hub.propose(issuance("GHA01-1", 1, 1000)).status is Status.COMPLETED
    dispatched: list[OutboxMessage] = []
    hub.lifecycle.mailer.outbox.hand_off.start(dispatched.append, timedelta(seconds=30))
    assert hub.propose(external("GHA01-2", 1, 10)).status is Status.CHECKED
    (request,) = dispatched
    assert (request.recipient, request.transaction_id) == ("CHE01", "GHA01-2")

    def claims(connection: Any) -> dict[int, Any]:
        rows = connection.execute(select(outbox.c.id, outbox.c.claimed_until))
        return {row.id: row.claimed_until for row in rows}

    assert hub.database.read_now(claims)[request.id] is not None  # no other process takes it

    def fails(connection: Any) -> None:
        hub.lifecycle.propose(connection, "GHA01", external("GHA01-3", 20, 30), hub.peers, hub.now)
        raise RuntimeError

    with pytest.raises(RuntimeError):  # a change that does not commit dispatches nothing
        hub.database.write_now(fails)
    assert len(dispatched) == 1
    assert hub.decide("GHA01-2", Status.ACCEPTED).status is Status.COMPLETED
    assert sorted(m.recipient for m in dispatched[1:]) == ["CHE01", "GHA01"]  # the notices


def test_a_transaction_of_many_blocks_changes_the_ledger_as_one_of_a_few_does(
    hub: HubHarness,
) -> None:
    """Many rows go through SQLAlchemy in multi-row statements, a few straight to the driver
    (article6.block_table): the ledger must not tell them apart."""
    assert hub.propose(issuance("GHA01-1", 1, 1000)).status is Status.COMPLETED
    pieces = [block(10 * i + 1, 10 * i + 5) for i in range(30)]  # 30 blocks, 60 rows around
    outcome = hub.propose(
        transaction("GHA01-2", XFER, pieces, acquirer="CHE01", target=CHE_ACCOUNT)
    )
    assert outcome.status is Status.CHECKED
    assert hub.decide("GHA01-2", Status.ACCEPTED).status is Status.COMPLETED
    held = holdings(hub, "GHA01")
    assert len(held) == 30
    assert sum(last - first + 1 for _, first, last, _ in held) == 1000 - 150
    moved = holdings(hub, "CHE01")
    assert [(first, last) for _, first, last, _ in moved] == [
        (10 * i + 1, 10 * i + 5) for i in range(30)
    ]
