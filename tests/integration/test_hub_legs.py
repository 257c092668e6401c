"""Leg confirmations at the hub: a registry's blocks after a completed transaction, compared
with the ledger at once (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select

from article6.batch import receipt_to
from article6.blocks import Block, serial_range
from article6.codes import Code
from article6.envelope import seal
from article6.headers import new_header
from article6.keys import DirectoryKey, KeyDirectory, SigningKey
from article6.model import Held, Holder, Status
from article6.outbox import OutboxMessage, claim, release_claims
from article6.pump import Attempt, DeliveryConfig, InMemoryTransport
from article6.unit import Unit
from article6.v1 import envelope_pb2, reconciliation_pb2, transaction_pb2
from article6.wire import held_block_message, unit_block
from gateway import legs
from gateway.delivery import Deliverer
from gateway.legs import confirm
from gateway.lifecycle import Outcome
from gateway.reads import Reads
from gateway.storage import reconciliations as runs
from gateway.storage.schema import outbox
from tests.builders import (
    CHE_ACCOUNT,
    GHA_ACCOUNT,
    T0,
    HubHarness,
    block,
    external,
    issuance,
    transaction,
)

GHA = Holder("GHA01", GHA_ACCOUNT)
XFER = transaction_pb2.TRANSACTION_TYPE_EXTERNAL_TRANSFER
NOTICE, REQUEST = "article6.v1.StatusNotice", "article6.v1.AcquisitionRequest"


@pytest.fixture
def hub(hub_database_url: str) -> Iterator[HubHarness]:
    harness = HubHarness.create(hub_database_url)
    assert harness.propose(issuance("GHA01-1", 1, 1000)).status is Status.COMPLETED
    yield harness
    harness.close()


def confirmation(
    transaction_id: str,
    *pieces: tuple[int, int, int],
    holder: Holder = GHA,
) -> bytes:
    message = reconciliation_pb2.LegConfirmation(transaction_id=transaction_id)
    for first, last, vintage in pieces:
        unit = unit_block(block(first, last, vintage=vintage))
        held = unit.with_attributes(Held(holder, unit.attributes))
        message.blocks.append(held_block_message(held))
    return message.SerializeToString()


def submit(hub: HubHarness, sender: str, payload: bytes) -> list[Code]:
    message = reconciliation_pb2.LegConfirmation.FromString(payload)
    outcome = hub.database.write_now(lambda unit: confirm(unit, sender, message, hub.now))
    return [code for code, _ in outcome.results]


def test_a_matching_confirmation_is_quiet_and_a_differing_one_freezes_at_once(
    hub: HubHarness,
) -> None:
    assert submit(hub, "GHA01", confirmation("GHA01-1", (1, 1000, 2024))) == []
    assert hub.database.read_now(runs.open_count) == 0
    assert submit(hub, "GHA01", confirmation("GHA01-1", (1, 1000, 2023))) == [
        Code.LEG_CONFIRMATION_MISMATCH
    ]
    found = hub.database.read_now(lambda c: runs.list_discrepancies(c, open_only=True))
    assert sorted((d.side, d.block.attributes.unit.vintage) for d in found) == [
        ("hub", 2024), ("registry", 2023),
    ]  # fmt: skip
    assert {d.transaction_id for d in found} == {"GHA01-1"}
    refused = hub.propose(external("GHA01-2", 1, 10))
    assert [code for code, _ in refused.results] == [Code.UNITS_FROZEN]
    for item in found:
        resolve = partial(runs.resolve, discrepancy_id=item.id, by="OPERATOR", reason="ok",
                          now=hub.now)  # fmt: skip
        hub.database.write_now(resolve)
    assert hub.propose(external("GHA01-3", 1, 10)).status is Status.CHECKED


def test_a_confirmation_overtaken_by_a_later_transaction_is_not_compared(
    hub: HubHarness,
) -> None:
    assert hub.propose(external("GHA01-2", 1, 10)).status is Status.CHECKED  # pending
    assert submit(hub, "GHA01", confirmation("GHA01-1", (1, 500, 2024))) == []
    assert hub.database.read_now(runs.open_count) == 0


def test_a_confirmation_later_than_the_bound_on_transactions_since_is_not_compared(
    hub: HubHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading every transaction of the registry completed since is bounded: beyond the
    bound, the books have moved on and the next run compares them."""
    monkeypatch.setattr(legs, "LEG_LATER_TRANSACTIONS", 2)
    hub.now += timedelta(seconds=1)  # after GHA01-1
    for n in (2, 3):  # elsewhere in the space: they do not touch GHA01-1's serials
        issued = hub.propose(issuance(f"GHA01-{n}", 10_000 * n, 10_000 * n + 9))
        assert issued.status is Status.COMPLETED
    differing = confirmation("GHA01-1", (1, 1000, 2023))
    assert submit(hub, "GHA01", differing) == [Code.LEG_CONFIRMATION_MISMATCH]  # 2: compared
    assert hub.propose(issuance("GHA01-4", 40_000, 40_009)).status is Status.COMPLETED
    found = hub.database.read_now(lambda c: runs.list_discrepancies(c, open_only=True))
    for item in found:
        hub.database.write_now(partial(runs.resolve, discrepancy_id=item.id, by="OPERATOR",
                                       reason="ok", now=hub.now))  # fmt: skip
    assert submit(hub, "GHA01", differing) == []  # 3 since: not compared
    assert hub.database.read_now(runs.open_count) == 0


def test_a_confirmation_must_concern_the_sender(hub: HubHarness) -> None:
    assert submit(hub, "CHE01", confirmation("GHA01-1")) == [Code.TRANSACTION_UNKNOWN]
    assert submit(hub, "GHA01", confirmation("GHA01-99")) == [Code.TRANSACTION_UNKNOWN]
    other = reconciliation_pb2.LegConfirmation(transaction_id="GHA01-1")
    unit = unit_block(block(1, 1000))
    foreign = unit.with_attributes(Held(Holder("CHE01", "CHE01-1001-30"), unit.attributes))
    other.blocks.append(held_block_message(foreign))
    assert submit(hub, "GHA01", other.SerializeToString()) == [Code.REGISTRY_NOT_PARTY_TO_UNITS]


def test_a_former_holder_cannot_freeze_the_units_it_transferred(hub: HubHarness) -> None:
    """The attack: GHA01 transfers serials to CHE01, then "confirms" them as still its own.
    The hub refuses (7007), records no discrepancy, and CHE01 can move its units."""
    assert hub.propose(external("GHA01-2", 1, 100)).status is Status.CHECKED
    assert hub.decide("GHA01-2", Status.ACCEPTED).status is Status.COMPLETED
    before = hub.state()
    for attempt in range(2):  # and again, as after a resolution
        lie = confirmation("GHA01-2", (1, 100, 2024))
        assert submit(hub, "GHA01", lie) == [Code.LEG_CONFIRMATION_NOT_OWN], attempt
    assert hub.database.read_now(runs.open_count) == 0
    assert hub.state() == before
    assert submit(hub, "GHA01", confirmation("GHA01-2")) == []  # its true side: nothing left
    onward = transaction(
        "CHE01-1", transaction_pb2.TRANSACTION_TYPE_EXTERNAL_TRANSFER, [block(1, 50)],
        sender="CHE01", source=CHE_ACCOUNT, acquirer="GHA01", target=GHA_ACCOUNT,
    )  # fmt: skip
    assert hub.propose(onward, sender="CHE01").status is Status.CHECKED


def test_a_confirmation_with_overlapping_blocks_is_refused_and_changes_nothing(
    hub: HubHarness,
) -> None:
    overlapping = confirmation("GHA01-1", (1, 600, 2024), (500, 1000, 2024))
    assert submit(hub, "GHA01", overlapping) == [Code.BLOCKS_OVERLAP]
    assert hub.database.read_now(runs.open_count) == 0


def test_open_discrepancies_are_found_among_a_thousand_ranges_in_one_bounded_query(
    hub: HubHarness,
) -> None:
    issued = unit_block(block(5_000, 5_000))
    held = issued.with_attributes(Held(Holder("GHA01", GHA_ACCOUNT), issued.attributes))
    hub.database.write_now(
        lambda unit: runs.add_discrepancies(unit, "GHA01", "hub", [held], hub.now)
    )
    (found,) = hub.database.read_now(lambda c: runs.list_discrepancies(c, open_only=True))

    def frozen(spans: list[Block[None]]) -> list[int]:
        return hub.database.read_now(lambda c: runs.frozen(c, "GHA01", spans))

    spans = [serial_range(10 * i + 1, 10 * i + 5) for i in range(1_000)]  # 5,000 in none
    assert frozen(spans) == []
    assert frozen([*spans[:499], serial_range(4_991, 5_000), *spans[500:]]) == [found.id]
    assert frozen([serial_range(1, 10**6), *spans[1:]]) == [found.id]  # a wide first range


async def never(registry: str, rpc: str, envelope: envelope_pb2.Envelope) -> envelope_pb2.Envelope:
    raise AssertionError("nothing is sent here")


@dataclass
class Registries:
    """Two registries' keys, and the hub's pump owner that reads their receipts."""

    keys: dict[str, SigningKey]
    directory: KeyDirectory
    deliverer: Deliverer

    @classmethod
    def of(cls, hub: HubHarness) -> Registries:
        keys = {registry: SigningKey.generate() for registry in ("GHA01", "CHE01")}
        directory = KeyDirectory(
            DirectoryKey(registry, key.public_raw, T0 - timedelta(days=1))
            for registry, key in keys.items()
        )
        deliverer = Deliverer(DeliveryConfig(), hub.database, hub.lifecycle, hub.lifecycle.mailer,
                              directory, InMemoryTransport(never), dict)  # fmt: skip
        return cls(keys, directory, deliverer)

    def answer(self, message: OutboxMessage, **fields: Any) -> Attempt:
        """The registry's signed receipt to ``message``, verified as the pump verifies one."""
        registry = message.recipient
        receipt = transaction_pb2.Receipt(
            accepted=True, in_reply_to=message.message_id,
            transaction_id=message.transaction_id or "", **fields,
        )  # fmt: skip
        receipt.header.CopyFrom(new_header(registry, "HUB", datetime.now(UTC)))
        reply = seal(receipt, [self.keys[registry]])
        verified = receipt_to(message.message_id, reply, directory=self.directory,
                              recipient="HUB", peer=registry)  # fmt: skip
        return Attempt(message, reply, receipt=verified)

    def confirm(self, notice: OutboxMessage, confirmed: bytes) -> Attempt:
        return self.answer(
            notice, status=transaction_pb2.TRANSACTION_STATUS_COMPLETED,
            leg_confirmation=reconciliation_pb2.LegConfirmation.FromString(confirmed),
        )  # fmt: skip


def claimed(hub: HubHarness, lease: timedelta = timedelta(seconds=9)) -> list[OutboxMessage]:
    now = datetime.now(UTC)
    return hub.database.write_now(lambda unit: claim(unit.connection, outbox, now, 100, lease))


def test_a_confirmation_in_the_receipt_to_a_completion_notice_is_compared_on_delivery(
    hub: HubHarness,
) -> None:
    registries = Registries.of(hub)
    assert hub.propose(external("GHA01-2", 1, 10)).status is Status.CHECKED
    assert hub.decide("GHA01-2", Status.ACCEPTED).status is Status.COMPLETED
    notices = {
        m.recipient: m for m in claimed(hub)
        if m.payload_type == "article6.v1.StatusNotice" and m.transaction_id == "GHA01-2"
    }  # fmt: skip
    for message in notices.values():
        sent = envelope_pb2.Envelope.FromString(message.envelope)
        assert transaction_pb2.StatusNotice.FromString(sent.payload).confirm_in_receipt
    # Claimed, nothing is claimed again until a claim is released (a full lane turned it away).
    assert not claimed(hub)
    turned_away = notices["CHE01"].id
    hub.database.write_now(lambda unit: release_claims(unit.connection, outbox, [turned_away]))
    assert [m.id for m in claimed(hub)] == [turned_away]

    # GHA01 says it still holds 1-10, which it transferred: refused (7007), nothing frozen.
    # CHE01 holds them with another vintage: its own side differs, frozen at once.
    che = Holder("CHE01", CHE_ACCOUNT)
    attempts = [
        registries.confirm(notices["GHA01"], confirmation("GHA01-2", (1, 10, 2024))),
        registries.confirm(notices["CHE01"], confirmation("GHA01-2", (1, 10, 2023), holder=che)),
    ]
    hub.database.write_now(lambda unit: registries.deliverer.pump._record_all(unit, attempts))
    found = hub.database.read_now(lambda c: runs.list_discrepancies(c, open_only=True))
    assert sorted((d.registry, d.side, d.transaction_id) for d in found) == [
        ("CHE01", "hub", "GHA01-2"), ("CHE01", "registry", "GHA01-2")
    ]  # fmt: skip
    states = hub.database.read_now(
        lambda c: c.execute(select(outbox.c.state).where(outbox.c.transaction_id == "GHA01-2"))
    )
    assert sorted(row.state for row in states) == ["delivered", "delivered", "obsolete"]


def test_decisions_and_confirmations_in_one_batch_are_applied_in_the_order_sent(
    hub: HubHarness,
) -> None:
    """A batch to CHE01 with its confirmation of GHA01-2, its acceptance of GHA01-3 (the
    same serials, after CHE01 gave them back) and its confirmation of GHA01-4: the acceptance
    completes GHA01-3 between the two confirmations, and neither freezes anything (the first
    is over serials that have moved on since, the second agrees with the ledger)."""
    registries, che = Registries.of(hub), Holder("CHE01", CHE_ACCOUNT)
    hub.propose(external("GHA01-2", 1, 10))
    hub.decide("GHA01-2", Status.ACCEPTED)
    hub.propose(external("GHA01-4", 21, 30))
    hub.decide("GHA01-4", Status.ACCEPTED)
    back = transaction("CHE01-1", XFER, [block(1, 10)], sender="CHE01", source=CHE_ACCOUNT,
                       acquirer="GHA01", target=GHA_ACCOUNT)  # fmt: skip
    assert hub.propose(back, sender="CHE01").status is Status.CHECKED
    assert hub.decide("CHE01-1", Status.ACCEPTED).status is Status.COMPLETED
    assert hub.propose(external("GHA01-3", 1, 10)).status is Status.CHECKED
    to_che = {(m.payload_type, m.transaction_id): m for m in claimed(hub) if m.recipient == "CHE01"}
    accepted = transaction_pb2.TRANSACTION_STATUS_ACCEPTED
    batch = [
        registries.confirm(to_che[NOTICE, "GHA01-2"],
                           confirmation("GHA01-2", (1, 10, 2024), holder=che)),
        registries.answer(to_che[REQUEST, "GHA01-3"], status=accepted),
        registries.confirm(to_che[NOTICE, "GHA01-4"],
                           confirmation("GHA01-4", (21, 30, 2024), holder=che)),
    ]  # fmt: skip
    hub.database.write_now(lambda unit: registries.deliverer.pump._record_all(unit, batch))
    assert hub.status("GHA01-3") is Status.COMPLETED
    assert hub.database.read_now(lambda c: runs.list_discrepancies(c, open_only=True)) == []


def test_a_confirmation_compares_the_ledger_a_batch_changed_before_it_in_its_unit(
    hub: HubHarness,
) -> None:
    """A batch's completions keep their ledger writes back until its change ends
    (gateway.reads); a confirmation later in the same unit of work reads the ledger itself,
    so they are written first (``Unit.catch_up``). Read before them, the ledger would still
    give GHA01 the serials CHE01 reports, a refusal (7007) of a true report."""
    assert hub.propose(external("GHA01-2", 1, 10)).status is Status.CHECKED
    held = confirmation("GHA01-2", (1, 10, 2024), holder=Holder("CHE01", CHE_ACCOUNT))
    message = reconciliation_pb2.LegConfirmation.FromString(held)

    def batch(unit: Unit) -> tuple[Outcome, Outcome]:
        reads = Reads.of(unit.connection, ["GHA01-2"]).with_ledger(unit, [], ["GHA01-2"])
        decided = hub.lifecycle.decide(unit, "GHA01-2", Status.ACCEPTED, [], hub.now, reads=reads)
        return decided, confirm(unit, "CHE01", message, hub.now)

    decided, compared = hub.database.write_now(batch)
    assert (decided.status, compared.results) == (Status.COMPLETED, [])


def test_a_confirmation_of_a_refused_proposal_is_answered_whatever_its_recorded_blocks(
    hub: HubHarness,
) -> None:
    """A refused proposal is recorded with the blocks it came with, overlapping ones too:
    only a completed transaction's serials are read for a comparison, so confirming the
    refused one is answered with its status, and nothing changes."""
    pieces = [block(1, 600), block(500, 1000)]
    refused = hub.propose(transaction("GHA01-2", XFER, pieces))
    assert refused.status is Status.CHECKED_DISCREPANCY  # the DES status of a refusal
    assert [code for code, _ in refused.results] == [Code.BLOCKS_OVERLAP]
    before = hub.state()
    lie = confirmation("GHA01-2", (1, 1000, 2024))
    assert submit(hub, "GHA01", lie) == [Code.STATUS_TRANSITION_INVALID]
    assert hub.state() == before
    assert hub.database.read_now(runs.open_count) == 0
