"""The adapter's intake on a real SQLite database, with the hub's answers played by hand:
idempotency, the checks that need its records, and each instruction's way to its end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, select

from article6.codes import Code
from article6.identifiers import format_account_id
from article6.keys import SigningKey
from article6.model import Status
from article6.node import store
from article6.node.engine import RegistryEngine
from article6.unit import Unit
from article6.v1 import envelope_pb2, mechanism_pb2, transaction_pb2
from mechanism_registry_adapter import book, feed
from mechanism_registry_adapter.instructions import InstructionState
from mechanism_registry_adapter.intake import Intake, Settings
from mechanism_registry_adapter.rules import MechanismRules

TODAY = date(2026, 11, 26)
MECH = "A64MR"
PENDING = format_account_id(MECH, 1)
ACCOUNT = format_account_id("UNIR", 1001)


def instructions(count: int = 2, prefix: str = "I-", account: str = ACCOUNT) -> list[
    mechanism_pb2.FirstTransferInstruction
]:  # fmt: skip
    shared = feed.template(
        activity_id="A64-GHA-0001", host_party="GHA", vintage=2025,
        authorization_id="GHA-A64-1", acquiring_account=account,
    )  # fmt: skip
    return feed.instructions(feed.issuance("ISS-1", 1, 10_000), shared, count, prefix)


class Adapter:
    def __init__(self, folder: Path) -> None:
        self.engine: Engine = store.open_database(f"sqlite:///{folder / 'a64mr.db'}", book.metadata)
        settings = Settings(MECH, PENDING, "CA6400", "UNIR")
        rules = MechanismRules(settings)
        registry = RegistryEngine(MECH, "HUB", SigningKey.generate(), rules)
        self.intake = Intake(registry, settings)
        self.registry = registry

    def submit(self, message: mechanism_pb2.FirstTransferInstruction) -> tuple[Code | None, bool]:
        with self.engine.begin() as connection:
            taken = self.intake.submit(Unit(connection), message, TODAY)
        code = Code(taken.results[0][0]) if taken.results else None
        return code, taken.replayed

    def record(self, instruction_id: str) -> book.Record:
        with self.engine.begin() as connection:
            found = book.get(connection, instruction_id)
        assert found is not None
        return found

    def proposals(self) -> list[transaction_pb2.Transaction]:
        with self.engine.begin() as connection:
            rows = connection.execute(
                select(store.outbox.c.envelope)
                .where(store.outbox.c.payload_type == "article6.v1.TransactionProposal")
                .order_by(store.outbox.c.id)
            )
            envelopes = [envelope_pb2.Envelope.FromString(row.envelope) for row in rows]
        return [
            transaction_pb2.TransactionProposal.FromString(e.payload).transaction for e in envelopes
        ]

    def hub_says(self, transaction_id: str, status: Status, *codes: Code) -> None:
        """The hub's final status arrives (as a receipt or a notice would bring it)."""

        def settle(connection: Connection) -> None:
            local = store.get_transaction(connection, transaction_id)
            assert local is not None
            message = transaction_pb2.Transaction.FromString(local.body)
            results = [(code.value, "") for code in codes]
            self.registry.settle(Unit(connection), message, status, results)

        with self.engine.begin() as connection:
            settle(connection)


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[Adapter]:
    made = Adapter(tmp_path)
    yield made
    made.engine.dispose()


def test_an_instruction_is_recorded_then_forwarded_then_completed(adapter: Adapter) -> None:
    first = instructions(1)[0]
    assert adapter.submit(first) == (None, False)
    record = adapter.record("I-000001")
    assert record.state is InstructionState.ISSUING
    (issuance,) = adapter.proposals()
    assert issuance.type == transaction_pb2.TRANSACTION_TYPE_ISSUANCE
    assert issuance.authorization.authorizing_party == "GHA"
    assert issuance.quantity == 9_300
    assert record.issuance_transaction_id == issuance.transaction_id

    adapter.hub_says(issuance.transaction_id, Status.COMPLETED)
    record = adapter.record("I-000001")
    assert record.state is InstructionState.FORWARDING
    transfer = adapter.proposals()[-1]
    assert transfer.type == transaction_pb2.TRANSACTION_TYPE_FIRST_TRANSFER
    assert (transfer.transferring_account, transfer.acquiring_account) == (PENDING, ACCOUNT)
    assert transfer.first_transfer.first_transferring_party == "GHA"

    adapter.hub_says(transfer.transaction_id, Status.COMPLETED)
    assert adapter.record("I-000001").state is InstructionState.COMPLETED
    # A replay after the end still changes nothing, and is told so.
    assert adapter.submit(first) == (None, True)
    assert len(adapter.proposals()) == 2


def test_a_replay_changes_nothing_and_other_content_under_the_id_is_refused(
    adapter: Adapter,
) -> None:
    first = instructions(1)[0]
    adapter.submit(first)
    sequence = adapter.record("I-000001").sequence
    assert adapter.submit(first) == (None, True)
    changed = mechanism_pb2.FirstTransferInstruction()
    changed.CopyFrom(first)
    changed.acquiring_account = format_account_id("UNIR", 1002)
    assert adapter.submit(changed) == (Code.INSTRUCTION_ID_REUSED, False)
    record = adapter.record("I-000001")
    assert (record.sequence, record.state) == (sequence, InstructionState.ISSUING)
    assert len(adapter.proposals()) == 1


def test_serials_are_forwarded_once_and_an_issuance_keeps_its_record(adapter: Adapter) -> None:
    adapter.submit(instructions(1)[0])
    again = instructions(2, prefix="J-")[0]  # serials 1-4650, inside I-000001's
    assert adapter.submit(again) == (Code.SERIALS_ALREADY_FORWARDED, False)
    assert adapter.record("J-000001").state is InstructionState.REFUSED
    other = instructions(1, prefix="K-")[0]
    other.issuance.share_of_proceeds.serial_first -= 1
    other.issuance.share_of_proceeds.serial_last -= 1
    other.blocks[0].serial_last -= 1
    assert adapter.submit(other) == (Code.ISSUANCE_RECORD_CONFLICT, False)
    assert len(adapter.proposals()) == 1


def test_a_failed_instruction_frees_its_serials_and_they_are_not_recorded_twice(
    adapter: Adapter,
) -> None:
    wrong = instructions(1, account=format_account_id("UNIR", 1999))[0]
    adapter.submit(wrong)
    issuance = adapter.proposals()[0]
    adapter.hub_says(issuance.transaction_id, Status.COMPLETED)
    transfer = adapter.proposals()[-1]
    adapter.hub_says(transfer.transaction_id, Status.REJECTED, Code.ACQUIRING_ACCOUNT_NOT_FOUND)
    failed = adapter.record("I-000001")
    assert failed.state is InstructionState.FAILED
    assert [code for code, _ in failed.results] == [Code.ACQUIRING_ACCOUNT_NOT_FOUND]

    right = instructions(1, prefix="R-")[0]
    assert adapter.submit(right) == (None, False)
    record = adapter.record("R-000001")
    assert record.state is InstructionState.FORWARDING  # the units wait in the pending account
    assert record.issuance_transaction_id is None
    kinds = [p.type for p in adapter.proposals()]
    assert kinds.count(transaction_pb2.TRANSACTION_TYPE_ISSUANCE) == 1


def test_the_outcome_feed_lists_each_change_once_in_order(adapter: Adapter) -> None:
    for message in instructions(3):
        adapter.submit(message)
    issuance = adapter.proposals()[0]
    refused = Status.CHECKED_DISCREPANCY
    adapter.hub_says(issuance.transaction_id, refused, Code.SERIALS_ALREADY_ISSUED)
    with adapter.engine.begin() as connection:
        feed_rows = book.changed_after(connection, 0, 100)
    assert [r.instruction_id for r in feed_rows] == ["I-000002", "I-000003", "I-000001"]
    assert feed_rows[-1].state is InstructionState.FAILED
    with adapter.engine.begin() as connection:
        assert [
            r.instruction_id for r in book.changed_after(connection, feed_rows[1].sequence, 9)
        ] == ["I-000001"]


def test_hostile_fields_are_refused_and_recorded_without_harm(adapter: Adapter) -> None:
    hostile = instructions(1)[0]
    hostile.acquiring_registry = "X" * 500
    assert adapter.submit(hostile) == (Code.REGISTRY_ID_INVALID, False)
    assert adapter.record("I-000001").state is InstructionState.REFUSED
    nameless = instructions(1, prefix="N-")[0]
    nameless.instruction_id = "no spaces allowed " * 10
    assert adapter.submit(nameless) == (Code.REQUIRED_FIELD_MISSING, False)
    assert adapter.proposals() == []
