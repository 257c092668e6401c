"""A registry's engine: proposing, deciding on acquisitions, applying the hub's outcomes.

Every method runs inside the caller's SQL transaction: those that may queue a message for the
hub take its unit of work (the message is handed to the registry's pump at commit), the
others its connection. Outcomes from the hub (a receipt's COMPLETED, a StatusNotice, a status
answer) are applied exactly once, guarded by the local transaction's ``applied`` flag,
whichever of them arrives first. What a registry accepts and what it lets its users propose
are its ``Rules``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

from google.protobuf.message import Message
from sqlalchemy import Connection

from article6 import holdings
from article6.block_table import overlapping_blocks
from article6.blocks import Block, intersect, merge_adjacent, partition, serial_range, take
from article6.codes import Code, Refusal
from article6.keys import SigningKey
from article6.model import (
    Held,
    Holder,
    LedgerBlock,
    Status,
    TransactionSpec,
    TransactionType,
    UnitBlock,
)
from article6.node import store
from article6.outbox import Outbox
from article6.unit import Unit
from article6.v1 import reconciliation_pb2, transaction_pb2
from article6.wire import held_block_message, transaction_spec, unit_block_message

log = logging.getLogger("registry")


@dataclass(frozen=True)
class Proposal:
    """What an operator asks for; the registry fills in ids and unit attributes."""

    type: TransactionType
    transferring_account: str
    acquiring_registry: str
    acquiring_account: str
    # Serial ranges, each tagged with its serial space (originating registry) or None when
    # the account holds those serials in one space only.
    ranges: Sequence[Block[str] | Block[None]] = ()
    issued: Sequence[UnitBlock] = ()
    use: transaction_pb2.UseDetails | None = None
    subtype: str = ""
    authorization: transaction_pb2.Authorization | None = None
    first_transfer: transaction_pb2.FirstTransfer | None = None


class Rules(Protocol):
    """What differs between registries."""

    def check_acquisition(self, connection: Connection, spec: TransactionSpec) -> None:
        """Refuse units offered to this registry (raise ``Refusal``: the acquisition is
        terminated with its code)."""

    def check_proposal(self, connection: Connection, proposal: Proposal) -> None:
        """Refuse a proposal before it is sent (raise ``Refusal``)."""

    def serial_space(self, connection: Connection, account_id: str) -> str:
        """The registry id that units issued into ``account_id`` originate in: their serial
        space, and the "originating registry" element of their ITMO ids."""

    def on_final(
        self,
        engine: RegistryEngine,
        unit: Unit,
        message: transaction_pb2.Transaction,
        status: Status,
        results: Sequence[tuple[int, str]],
    ) -> None:
        """Told, inside the SQL transaction that records it, when a transaction becomes final
        here (the mechanism registry moves an instruction on). Rules that subclass ``Rules``
        have nothing to do by default."""
        return None  # noqa: RET501 (a body, so the default is not abstract for mypy)


class AcquiringAccount(Protocol):
    """An account as acceptance sees it."""

    @property
    def account_id(self) -> str:
        """The account's id."""

    @property
    def open(self) -> bool:
        """Whether it still acquires units."""

    def allows(self, cooperative_approach: str) -> bool:
        """Whether units of this cooperative approach may be held in it."""


def check_account_accepts(
    registry_id: str, spec: TransactionSpec, account: AcquiringAccount | None
) -> None:
    """The acceptance every registry applies: units for this registry, into an account that
    exists (4003), is open (4004) and is linked to their cooperative approach (5006)."""
    if spec.acquiring_registry != registry_id:
        raise Refusal(Code.ACQUIRING_REGISTRY_MISMATCH, f"not for {registry_id}")
    if account is None:
        raise Refusal(Code.ACQUIRING_ACCOUNT_NOT_FOUND, spec.acquiring_account)
    if not account.open:
        raise Refusal(Code.ACCOUNT_CLOSED, spec.acquiring_account)
    for block in spec.blocks:
        approach = block.attributes.cooperative_approach
        if not account.allows(approach):
            raise Refusal(
                Code.COOPERATIVE_APPROACH_MISMATCH,
                f"{account.account_id} is not linked to {approach}",
            )


class RegistryEngine:
    def __init__(
        self,
        registry_id: str,
        hub_id: str,
        key: SigningKey,
        rules: Rules,
    ) -> None:
        self.registry_id = registry_id
        self.hub_id = hub_id
        self.key = key
        self.rules = rules
        self.outbox = Outbox(store.outbox)  # its hand-off started by the registry's pump

    # --- operators -----------------------------------------------------------------------

    def propose(self, unit: Unit, proposal: Proposal) -> str:
        """Record a proposal, lock its units locally, and queue it for the hub."""
        connection = unit.connection
        self.rules.check_proposal(connection, proposal)
        transaction_id = f"{self.registry_id}-{store.next_number(connection, 'transaction')}"
        blocks = list(proposal.issued) or self._held_blocks(connection, proposal)
        message = transaction_pb2.Transaction(
            transaction_id=transaction_id,
            type=transaction_pb2.TransactionType.ValueType(proposal.type.value),
            transferring_registry=self.registry_id,
            transferring_account=proposal.transferring_account,
            acquiring_registry=proposal.acquiring_registry,
            acquiring_account=proposal.acquiring_account,
            blocks=[unit_block_message(block) for block in blocks],
            quantity=sum(block.unit_count for block in blocks),
            subtype=proposal.subtype,
        )
        if proposal.use is not None:
            message.use.CopyFrom(proposal.use)
        if proposal.authorization is not None:
            message.authorization.CopyFrom(proposal.authorization)
        if proposal.first_transfer is not None:
            message.first_transfer.CopyFrom(proposal.first_transfer)
        if proposal.type is not TransactionType.ISSUANCE:
            store.lock(connection, transaction_id, blocks)
        body = message.SerializeToString(deterministic=True)
        store.put_transaction(
            connection, transaction_id, role="proposer", status=Status.PROPOSED, body=body
        )
        self._post(unit, transaction_pb2.TransactionProposal(transaction=message), transaction_id)
        return transaction_id

    def _held_blocks(self, connection: Connection, proposal: Proposal) -> list[UnitBlock]:
        """The wanted serials as this registry holds them in the transferring account."""
        account = proposal.transferring_account
        held = self._holdings_for(connection, account, proposal.ranges)
        blocks: list[UnitBlock] = []
        for space, ranges in _ranges_by_space(proposal.ranges, held, account).items():
            in_space = [b for b in held if b.attributes.unit.originating_registry == space]
            result = take(in_space, ranges)
            if not result.complete:
                gap = result.missing[0]
                raise Refusal(
                    Code.UNITS_NOT_HELD,
                    f"{space} serials {gap.serial_first}-{gap.serial_last} are not in {account}",
                )
            taken = [piece.with_attributes(piece.attributes.unit) for piece in result.taken]
            if store.locked(connection, space, taken):
                raise Refusal(Code.UNITS_LOCKED, "units are in a pending transaction")
            holdings.check_held(taken, result.taken, Holder(self.registry_id, account))
            blocks += taken
        return blocks

    def _holdings_for(
        self, connection: Connection, account: str, ranges: Sequence[Block[str] | Block[None]]
    ) -> list[LedgerBlock]:
        """The account's blocks that the wanted ranges may take from: where every range names
        its serial space, only the blocks around them (costs grow with the ranges, not with
        the account); otherwise the whole account, to tell which space each range means."""
        if not all(isinstance(wanted.attributes, str) for wanted in ranges):
            return store.account_holdings(connection, self.registry_id, account)
        found: list[LedgerBlock] = []
        for space in sorted({str(wanted.attributes) for wanted in ranges}):
            in_space = [wanted for wanted in ranges if wanted.attributes == space]
            around = store.neighbourhood(connection, self.registry_id, space, in_space)
            found += [b for b in around.blocks if b.attributes.holder.account_id == account]
        return sorted(found, key=lambda b: (b.attributes.unit.originating_registry, b.serial_first))

    # --- the hub's messages --------------------------------------------------------------

    def acquisition(
        self, connection: Connection, message: transaction_pb2.Transaction
    ) -> tuple[Status, list[tuple[Code, str]]]:
        """Decide on units offered by another registry: ACCEPTED, or REJECTED with codes (DES 8
        or 6; the refusal is final here).

        Decided once: a request for a transaction already known is answered from the record.
        """
        known = store.get_transaction(connection, message.transaction_id)
        if known is not None:
            known_codes = [(code, detail) for code, detail in known.results if code in _CODES]
            return known.status, [(Code(code), detail) for code, detail in known_codes]
        try:
            spec = transaction_spec(message)
            self.rules.check_acquisition(connection, spec)
        except Refusal as refusal:
            decision, results = Status.REJECTED, [(refusal.code, refusal.detail)]
        else:
            decision, results = Status.ACCEPTED, []
        store.put_transaction(
            connection, message.transaction_id, role="acquirer", status=decision,
            body=message.SerializeToString(deterministic=True), results=results,
        )  # fmt: skip
        return decision, results

    def settle(
        self,
        unit: Unit,
        message: transaction_pb2.Transaction,
        status: Status,
        results: Sequence[tuple[int, str]] = (),
        confirm_in_receipt: bool = False,
    ) -> reconciliation_pb2.LegConfirmation | None:
        """Apply a final (or checked) status from the hub, exactly once. A completion is
        confirmed to the hub (``LegConfirmation``): queued in the outbox, or with
        ``confirm_in_receipt`` returned, for the receipt to the hub's notice to carry. As the
        DES clients do, 3 (the hub's checks failed) and 6 (the acquirer refused) terminate."""
        connection = unit.connection
        status = status.registry_outcome
        local = store.get_transaction(connection, message.transaction_id)
        if local is not None and local.status.final:
            return None
        role = local.role if local else self._role(message)
        body = message.SerializeToString(deterministic=True)
        if status is Status.COMPLETED:
            self._complete(connection, transaction_spec(message))
        if status.final:
            store.unlock(connection, message.transaction_id)
        store.put_transaction(
            connection, message.transaction_id, role=role, status=status, body=body,
            applied=status is Status.COMPLETED, results=results,
        )  # fmt: skip
        confirmation = None
        if status is Status.COMPLETED:
            confirmation = self._confirmation(connection, message)
            if not confirm_in_receipt:
                self._post(unit, confirmation, message.transaction_id)
                confirmation = None
        if status.final:
            self.rules.on_final(self, unit, message, status, results)
        unit.after_commit(partial(log.info, "%s %s", message.transaction_id, status.name,
                                  extra={"transaction_id": message.transaction_id}))  # fmt: skip
        return confirmation

    def _confirmation(
        self, connection: Connection, message: transaction_pb2.Transaction
    ) -> reconciliation_pb2.LegConfirmation:
        """This registry's blocks over the transaction's serials as completing it left them,
        for the hub to compare with its ledger."""
        confirmation = reconciliation_pb2.LegConfirmation(transaction_id=message.transaction_id)
        by_space: dict[str, list[Block[None]]] = {}
        for block in message.blocks:
            wanted = serial_range(block.serial_first, block.serial_last)
            by_space.setdefault(block.originating_registry, []).append(wanted)
        for space, ranges in sorted(by_space.items()):
            around = store.neighbourhood(connection, self.registry_id, space, ranges)
            held = sorted(around.blocks, key=lambda b: b.serial_first)
            confirmation.blocks.extend(held_block_message(b) for b in intersect(held, ranges))
        return confirmation

    def _post(self, unit: Unit, message: Message, transaction_id: str) -> None:
        """Queue ``message`` for the hub (``Outbox.send`` stamps and signs it)."""
        now = datetime.now(UTC)
        self.outbox.send(unit, message, sender=self.registry_id, recipient=self.hub_id,
                         key=self.key, transaction_id=transaction_id, at=now)  # fmt: skip

    def _role(self, message: transaction_pb2.Transaction) -> str:
        return "proposer" if message.transferring_registry == self.registry_id else "acquirer"

    def _complete(self, connection: Connection, spec: TransactionSpec) -> None:
        by_space: dict[str, list[UnitBlock]] = {}
        for block in spec.blocks:
            by_space.setdefault(block.attributes.originating_registry, []).append(block)
        for space, wanted in by_space.items():
            neighbourhood = store.neighbourhood(connection, self.registry_id, space, wanted)
            neighbourhood.replace(connection, self._after(spec, neighbourhood.blocks, wanted))

    def _after(
        self, spec: TransactionSpec, current: list[LedgerBlock], wanted: list[UnitBlock]
    ) -> list[LedgerBlock]:
        change = holdings.completion(spec)
        if spec.type is TransactionType.ISSUANCE:
            return holdings.add(current, [holdings.holding(b, spec.target) for b in wanted])
        if spec.crosses_registries and spec.acquiring_registry == self.registry_id:
            # Units arrive as completing the transaction makes them (a first transfer: ITMOs).
            arriving = [b.with_attributes(change(Held(spec.source, b.attributes))) for b in wanted]
            return holdings.add(current, arriving)
        if spec.crosses_registries:  # the units leave this registry
            return merge_adjacent(partition(current, wanted)[1])
        return holdings.move(current, wanted, change)


_CODES = frozenset(code.value for code in Code)


def _ranges_by_space(
    ranges: Sequence[Block[str] | Block[None]], held: Sequence[LedgerBlock], account: str
) -> dict[str, list[Block[None]]]:
    """Group wanted ranges by serial space. Serials are unique only within their originating
    registry, so a range without one is taken from the one space the account holds it in."""
    grouped: dict[str, list[Block[None]]] = {}
    for wanted in ranges:
        space = wanted.attributes
        if space is None:
            spaces_held = {
                b.attributes.unit.originating_registry for b in overlapping_blocks(held, [wanted])
            }
            if len(spaces_held) > 1:
                raise Refusal(
                    Code.REQUIRED_FIELD_MISSING,
                    f"{account} holds serials {wanted.serial_first}-{wanted.serial_last} of "
                    f"{', '.join(sorted(spaces_held))}: name one, e.g. "
                    f"{min(spaces_held)}:{wanted.serial_first}-{wanted.serial_last}",
                )
            if not spaces_held:
                raise Refusal(
                    Code.UNITS_NOT_HELD,
                    f"serials {wanted.serial_first}-{wanted.serial_last} are not in {account}",
                )
            space = spaces_held.pop()
        grouped.setdefault(space, []).append(serial_range(wanted.serial_first, wanted.serial_last))
    return grouped
