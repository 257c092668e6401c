"""Taking instructions in and carrying each to its end, exactly once.

An instruction is one row whose state moves forward inside the SQL transactions that also
queue the adapter's messages to the hub (its outbox), so a crash anywhere leaves either the
old state with nothing queued or the new state with its message queued:

    received -> REFUSED                          the checks failed (nothing is sent)
    received -> ISSUING -> FORWARDING -> COMPLETED
    ISSUING | FORWARDING -> FAILED               the hub or the acquirer refused, or time-out

ISSUING records the A6.4ERs in the hub's ledger as the mechanism registry's, in its pending
account, with the host Party's authorization (an issuance of A6.4ERs; the hub records the
authorization on first sight). FORWARDING is the first transfer from the pending account to
the acquiring account: completing it makes the units ITMOs. A failed instruction's serials
are released and may be instructed again; units already recorded in the pending account are
then transferred without being recorded twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection

from article6.blocks import Block, take
from article6.codes import Code, Refusal
from article6.identifiers import format_account_id
from article6.model import FirstTransferTrigger, Status, TransactionType, UnitBlock, UnitState
from article6.node import store
from article6.node.config import RegistryConfig
from article6.node.engine import Proposal, RegistryEngine
from article6.unit import Unit
from article6.v1 import mechanism_pb2, transaction_pb2, units_pb2
from mechanism_registry_adapter import book
from mechanism_registry_adapter.formats import digest, instruction
from mechanism_registry_adapter.instructions import (
    INSTRUCTION_ID,
    Instruction,
    InstructionState,
    Rounding,
    check,
    grant,
    unit_blocks,
)

log = logging.getLogger("mechanism.intake")


@dataclass(frozen=True)
class Settings:
    """The config file's ``[mechanism]`` table (see ``mechanism_registry_adapter.__main__``)."""

    registry_id: str
    pending_account: str
    cooperative_approach: str
    default_acquiring_registry: str
    deduction_rounding: Rounding = Rounding.DOWN

    @classmethod
    def from_config(cls, config: RegistryConfig) -> Settings:
        table = config.document.get("mechanism", {})
        return cls(
            registry_id=config.registry_id,
            pending_account=table.get("pending_account")
            or format_account_id(config.registry_id, 1),
            cooperative_approach=table.get("cooperative_approach", "CA6400"),
            default_acquiring_registry=table.get("default_acquiring_registry", "UNIR"),
            deduction_rounding=Rounding(table.get("deduction_rounding", Rounding.DOWN.value)),
        )


@dataclass(frozen=True)
class Taken:
    """What intake says about one instruction."""

    record: book.Record | None  # None: refused before it could be recorded
    results: list[tuple[int, str]]
    replayed: bool = False
    instruction_id: str = ""


class Intake:
    def __init__(self, engine: RegistryEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    # --- intake --------------------------------------------------------------------------

    def submit(
        self,
        unit: Unit,
        message: mechanism_pb2.FirstTransferInstruction,
        today: date,
    ) -> Taken:
        """Record an instruction and, if it passes the checks, queue its first step."""
        connection = unit.connection
        instruction_id = message.instruction_id
        known = book.get(connection, instruction_id) if instruction_id else None
        if known is not None:
            if known.digest != digest(message):
                detail = f"{instruction_id} was received before with other content"
                return Taken(None, [(Code.INSTRUCTION_ID_REUSED, detail)], False, instruction_id)
            return Taken(known, known.results, replayed=True, instruction_id=instruction_id)
        try:
            parsed = instruction(message, self.settings.default_acquiring_registry)
            check(parsed, today, self.settings.deduction_rounding)
        except Refusal as refusal:
            return self._refused(connection, message, refusal)
        try:
            with unit.savepoint():  # a refusal below leaves no trace but the record
                self._start(unit, message, parsed)
        except Refusal as refusal:
            return self._refused(connection, message, refusal)
        record = book.get(connection, instruction_id)
        assert record is not None
        return Taken(record, record.results, instruction_id=instruction_id)

    def _refused(
        self,
        connection: Connection,
        message: mechanism_pb2.FirstTransferInstruction,
        refusal: Refusal,
    ) -> Taken:
        results = [(refusal.code, refusal.detail)]
        if not _storable_id(message.instruction_id):
            return Taken(None, list(results), instruction_id=message.instruction_id)
        book.insert_instruction(
            connection, message.instruction_id, digest(message),
            message.SerializeToString(deterministic=True), message.acquiring_registry[:16],
            InstructionState.REFUSED, results,
        )  # fmt: skip
        record = book.get(connection, message.instruction_id)
        return Taken(record, list(results), instruction_id=message.instruction_id)

    def _start(
        self,
        unit: Unit,
        message: mechanism_pb2.FirstTransferInstruction,
        parsed: Instruction,
    ) -> None:
        """The checks that need the adapter's records, then the first step."""
        connection = unit.connection
        self._check_records(connection, message, parsed)
        book.insert_instruction(
            connection, parsed.instruction_id, digest(message),
            message.SerializeToString(deterministic=True), parsed.acquiring_registry,
            InstructionState.ISSUING,
        )  # fmt: skip
        self._begin(unit, parsed)

    def retry(self, unit: Unit, instruction_id: str) -> None:
        """Start a failed instruction again from its first step (its serials were released
        when it failed); a Refusal if they have been instructed again meanwhile."""
        connection = unit.connection
        record = book.get(connection, instruction_id)
        assert record is not None, instruction_id
        assert record.state is InstructionState.FAILED, record
        message = mechanism_pb2.FirstTransferInstruction.FromString(record.body)
        parsed = instruction(message, self.settings.default_acquiring_registry)
        self._check_records(connection, message, parsed)
        book.restart_instruction(connection, instruction_id)
        self._begin(unit, parsed)

    def _check_records(
        self,
        connection: Connection,
        message: mechanism_pb2.FirstTransferInstruction,
        parsed: Instruction,
    ) -> None:
        self._check_issuance(connection, message, parsed)
        taken = book.forwarding(connection, self.settings.registry_id, parsed.blocks)
        if taken:
            clash = taken[0]
            raise Refusal(
                Code.SERIALS_ALREADY_FORWARDED,
                f"serials {clash.serial_first}-{clash.serial_last} are forwarded by "
                f"{clash.attributes}",
            )

    def _begin(self, unit: Unit, parsed: Instruction) -> None:
        """Reserve the serials and propose the first step: the issuance, or the transfer of
        what an earlier, failed instruction already recorded."""
        connection = unit.connection
        space = self.settings.registry_id
        book.reserve(connection, parsed.instruction_id, space, parsed.blocks)
        wanted = unit_blocks(parsed, space, self.settings.cooperative_approach)
        to_record = self._not_yet_recorded(connection, wanted)
        if not to_record:  # recorded by an instruction that failed later: transfer them now
            self._forward(unit, parsed)
            return
        proposal = Proposal(
            TransactionType.ISSUANCE, "", space, self.settings.pending_account,
            issued=to_record, authorization=_authorization_message(parsed, self.settings),
        )  # fmt: skip
        transaction_id = self.engine.propose(unit, proposal)
        book.update_instruction(
            connection, parsed.instruction_id, InstructionState.ISSUING,
            issuance_transaction_id=transaction_id,
        )  # fmt: skip

    def _check_issuance(
        self,
        connection: Connection,
        message: mechanism_pb2.FirstTransferInstruction,
        parsed: Instruction,
    ) -> None:
        """The same issuance id always carries the same record; issuances never overlap."""
        issuance = parsed.issuance
        record = message.issuance.SerializeToString(deterministic=True)
        seen = hashlib.sha256(record).hexdigest()
        known = book.issuance_digest(connection, issuance.issuance_id)
        if known is not None:
            if known != seen:
                raise Refusal(
                    Code.ISSUANCE_RECORD_CONFLICT,
                    f"issuance {issuance.issuance_id} was received before with other figures",
                )
            return
        space = self.settings.registry_id
        others = book.overlapping_issuances(connection, space, issuance.issued)
        if others:
            raise Refusal(
                Code.ISSUANCE_RECORD_CONFLICT,
                f"issuance {issuance.issuance_id} overlaps issuance {others[0]}",
            )
        book.add_issuance(connection, issuance.issuance_id, seen, space, issuance.issued)

    def _not_yet_recorded(
        self, connection: Connection, wanted: Sequence[UnitBlock]
    ) -> list[UnitBlock]:
        """The wanted units not already in the pending account (which must hold any it has
        of them with the same attributes)."""
        space = self.settings.registry_id
        around = store.neighbourhood(connection, space, space, wanted)
        held = [
            block.with_attributes(block.attributes.unit)
            for block in around.overlapping(wanted)
            if block.attributes.holder.account_id == self.settings.pending_account
        ]
        if any(b.attributes.state is not UnitState.HELD for b in held) or not _same(held, wanted):
            raise Refusal(
                Code.ISSUANCE_RECORD_CONFLICT,
                "some serials are already recorded in the ledger with other attributes",
            )
        missing = take(held, wanted).missing
        attributes = wanted[0].attributes
        return [piece.with_attributes(attributes) for piece in missing]

    def _forward(self, unit: Unit, parsed: Instruction) -> None:
        space = self.settings.registry_id
        ranges: list[Block[str] | Block[None]] = [
            Block(b.serial_first, b.serial_last, space) for b in parsed.blocks
        ]
        proposal = Proposal(
            TransactionType.FIRST_TRANSFER, self.settings.pending_account,
            parsed.acquiring_registry, parsed.acquiring_account, ranges,
            first_transfer=transaction_pb2.FirstTransfer(
                first_transferring_party=parsed.host_party,
                trigger=transaction_pb2.FirstTransferTrigger.ValueType(
                    FirstTransferTrigger.INTERNATIONAL_TRANSFER.value
                ),
            ),
        )  # fmt: skip
        transaction_id = self.engine.propose(unit, proposal)
        book.update_instruction(
            unit.connection, parsed.instruction_id, InstructionState.FORWARDING,
            transfer_transaction_id=transaction_id,
        )  # fmt: skip

    # --- the hub's outcomes --------------------------------------------------------------

    def on_final(
        self,
        unit: Unit,
        message: transaction_pb2.Transaction,
        status: Status,
        results: Sequence[tuple[int, str]],
    ) -> None:
        """Move an instruction on when one of its hub transactions becomes final (called
        once per transaction, in the SQL transaction that records its final status)."""
        connection = unit.connection
        record = book.by_transaction(connection, message.transaction_id)
        if record is None or record.state.final:
            return  # an operator's own transaction, not an instruction's
        if status is not Status.COMPLETED:
            book.release(connection, record.instruction_id)
            book.update_instruction(
                connection, record.instruction_id, InstructionState.FAILED, list(results)
            )
            codes = "; ".join(f"{code} {detail}" for code, detail in results) or status.name
            log.warning("instruction %s failed at %s (%s); `article6-mechanism retry-failed` "
                        "tries it again", record.instruction_id, message.transaction_id, codes,
                        extra={"transaction_id": message.transaction_id})  # fmt: skip
            return
        if message.transaction_id == record.transfer_transaction_id:
            book.update_instruction(connection, record.instruction_id, InstructionState.COMPLETED)
            return
        body = mechanism_pb2.FirstTransferInstruction.FromString(record.body)
        try:
            self._forward(unit, instruction(body, self.settings.default_acquiring_registry))
        except Refusal as refusal:  # cannot happen while the reservations hold; never stall
            book.release(connection, record.instruction_id)
            book.update_instruction(
                connection, record.instruction_id, InstructionState.FAILED,
                [(refusal.code, refusal.detail)],
            )  # fmt: skip


def _same(held: Sequence[UnitBlock], wanted: Sequence[UnitBlock]) -> bool:
    attributes = {block.attributes for block in wanted}
    return all(block.attributes in attributes for block in held)


def _storable_id(instruction_id: str) -> bool:
    return bool(INSTRUCTION_ID.fullmatch(instruction_id))


def _authorization_message(
    parsed: Instruction, settings: Settings
) -> transaction_pb2.Authorization:
    granted = grant(parsed, settings.cooperative_approach)
    return transaction_pb2.Authorization(
        authorization_id=granted.authorization_id,
        authorizing_party=granted.authorizing_party,
        cooperative_approach=granted.cooperative_approach,
        purpose=units_pb2.Purpose.ValueType(granted.purpose.value),
        quantity_cap=granted.quantity_cap,
        vintage_first=granted.vintage_first,
        vintage_last=granted.vintage_last,
    )


def outcome_message(record: book.Record) -> mechanism_pb2.InstructionOutcome:
    body = mechanism_pb2.FirstTransferInstruction.FromString(record.body)
    outcome = mechanism_pb2.InstructionOutcome(
        instruction_id=record.instruction_id,
        state=mechanism_pb2.InstructionState.ValueType(record.state.value),
        issuance_transaction_id=record.issuance_transaction_id or "",
        transfer_transaction_id=record.transfer_transaction_id or "",
        sequence=record.sequence,
        quantity=min(
            sum(max(b.serial_last - b.serial_first + 1, 0) for b in body.blocks), 2**64 - 1
        ),
    )
    for code, detail in record.results:
        outcome.results.add(code=code, detail=detail)
    outcome.updated_at.FromDatetime(record.updated_at)
    return outcome
