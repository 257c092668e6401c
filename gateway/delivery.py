"""The hub's delivery: its pump (``article6.pump``) to the registries, and the time-out sweep.

The pump does what every process's pump does (one lane per registry with its breaker, claims
and hand-off at commit, back-off, dead letters, re-stamping a stale retry); an operator can put
a dead letter back (``article6-admin retry``). What is the hub's own is what a receipt means.
The receipt to an AcquisitionRequest carries the acquiring registry's decision, and the receipt
to a completion notice the registry's leg confirmation; each is applied in the same SQL
transaction that marks the message delivered. The first attempt to deliver an
AcquisitionRequest starts the acquiring registry's acceptance time-out (it could not have
answered before), so a busy hub never cancels a transfer that was waiting in its own outbox.
Messages go over mTLS, each lane's batch through ``Registry.DeliverBatch`` (or one by one
through ``Registry.Deliver`` to a registry that does not serve batches).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from article6.codes import Code, Refusal
from article6.keys import KeyDirectory
from article6.model import Status
from article6.outbox import OutboxMessage
from article6.pump import (
    Attempt,
    DeliveryConfig,
    Kind,
    Pump,
    Signer,
    Source,
    Transport,
    pause,
)
from article6.unit import Unit
from article6.v1 import reconciliation_pb2, transaction_pb2
from gateway.config import RegistryEntry
from gateway.legs import ReadAhead, confirm
from gateway.lifecycle import ACQUISITION_REQUEST, Lifecycle, Outcome
from gateway.mailer import Mailer
from gateway.metrics import HubMetrics
from gateway.reads import Reads
from gateway.storage.database import Database

log = logging.getLogger("gateway.delivery")

STATUS_NOTICE = "article6.v1.StatusNotice"
KINDS = {
    ACQUISITION_REQUEST: Kind(transaction_pb2.AcquisitionRequest, "Deliver"),
    STATUS_NOTICE: Kind(transaction_pb2.StatusNotice, "Deliver"),
}


class Deliverer:
    """The hub's pump, and what the registries' receipts mean to the hub (its ``Peer``)."""

    def __init__(
        self,
        config: DeliveryConfig,
        database: Database,
        lifecycle: Lifecycle,
        mailer: Mailer,
        directory: KeyDirectory,
        transport: Transport,
        registries: Callable[[], Mapping[str, RegistryEntry]],
        metrics: HubMetrics | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.registries = registries
        self.pump = Pump(
            source=Source(mailer.outbox, database.write), transport=transport, peer=self,
            config=config, kinds=KINDS, signer=Signer(mailer.hub_id, mailer.key, directory),
            counts=None if metrics is None else metrics.delivery, log=log,
        )  # fmt: skip

    def wake(self) -> None:
        """Something was written to the outbox (by an operator, the time-out sweep): claim
        now rather than at the next poll."""
        self.pump.wake()

    async def run(self, stopping: asyncio.Event) -> None:
        await self.pump.run(stopping, self.registries())

    def attempted(self, unit: Unit, attempt: Attempt) -> None:
        message = attempt.message
        if (
            message.attempts == 0
            and message.payload_type == ACQUISITION_REQUEST
            and _decided(attempt.receipt) is None  # a decision ends the wait: none to extend
        ):
            assert message.transaction_id, message
            self.lifecycle.offered(unit, message.transaction_id,
                                   attempt.started or datetime.now(UTC))  # fmt: skip

    def delivered(
        self, unit: Unit, receipts: Sequence[tuple[OutboxMessage, transaction_pb2.Receipt]]
    ) -> None:
        """Decisions and leg confirmations in the order they came: the decided transactions
        read in one statement (gateway.reads), and each run of confirmations between two
        decisions compared on what is read once for the run (legs.ReadAhead)."""
        now = datetime.now(UTC)
        decisions = [(m.transaction_id or "", _decided(r)) for m, r in receipts if _requested(m)]
        decided = [i for i, decision in decisions if decision is not None]
        accepted = [i for i, decision in decisions if decision is Status.ACCEPTED]
        reads = None  # the transactions decided, in one statement, and the ledger around them
        if decided:
            reads = Reads.of(unit.connection, decided).with_ledger(unit, [], accepted)
        run: list[tuple[OutboxMessage, reconciliation_pb2.LegConfirmation]] = []
        for message, receipt in receipts:
            if _requested(message):
                assert message.transaction_id
                self._confirmed(unit, run, now)
                run = []
                self._decision(unit, message.transaction_id, receipt, now, reads)
            if receipt.HasField("leg_confirmation"):
                run.append((message, receipt.leg_confirmation))
        self._confirmed(unit, run, now)

    def _decision(
        self,
        unit: Unit,
        transaction_id: str,
        receipt: transaction_pb2.Receipt,
        now: datetime,
        reads: Reads | None,
    ) -> None:
        decision = _decided(receipt)
        if decision is None:  # the registry decides later and calls Hub.NotifyStatus
            return
        results = [] if decision is Status.ACCEPTED else [
            (Code(r.code), r.detail) for r in receipt.results if r.code in _CODES
        ]  # fmt: skip
        self.lifecycle.decide(unit, transaction_id, decision, results, now, True, reads)

    def _confirmed(
        self,
        unit: Unit,
        run: Sequence[tuple[OutboxMessage, reconciliation_pb2.LegConfirmation]],
        now: datetime,
    ) -> None:
        """Leg confirmations in the receipts to completion notices, compared at once as
        Hub.SubmitReconciliation compares one; a difference freezes the serials there."""
        wanted = [(m, c) for m, c in run if self._expected(m, c)]
        if not wanted:
            return
        read = ReadAhead.read(unit, [c.transaction_id for _, c in wanted])
        for message, confirmation in wanted:
            self._compared(unit, message, confirmation, now, read)

    @staticmethod
    def _expected(message: OutboxMessage, confirmation: reconciliation_pb2.LegConfirmation) -> bool:
        """A confirmation answers the completion notice it came in the receipt to."""
        if message.payload_type == STATUS_NOTICE and (
            confirmation.transaction_id == message.transaction_id
        ):
            return True
        registry = message.recipient
        log.warning("%s confirmed %s in its receipt to %s; ignored", registry,
                    confirmation.transaction_id[:64], message.message_id,
                    extra={"peer": registry, "message_id": message.message_id})  # fmt: skip
        return False

    @staticmethod
    def _compared(
        unit: Unit,
        message: OutboxMessage,
        confirmation: reconciliation_pb2.LegConfirmation,
        now: datetime,
        read: ReadAhead,
    ) -> None:
        transaction_id, registry = confirmation.transaction_id, message.recipient
        try:
            outcome = confirm(unit, registry, confirmation, now, read)
        except Refusal as refusal:  # raised before anything is written
            outcome = Outcome(transaction_id, None, [(refusal.code, refusal.detail)])
        if outcome.results:
            log.warning("leg confirmation from %s of %s: %s", registry, transaction_id,
                        "; ".join(f"{code.value} {detail}" for code, detail in outcome.results),
                        extra={"peer": registry, "transaction_id": transaction_id})  # fmt: skip


async def expire_loop(
    database: Database, lifecycle: Lifecycle, wake: Callable[[], None], stopping: asyncio.Event
) -> None:
    """Cancel external transfers past their ``respond_by``, twice a second."""
    while not stopping.is_set():
        try:
            cancelled = await database.write(
                lambda unit: lifecycle.cancel_expired(unit, datetime.now(UTC))
            )
        except Exception:  # the loop must outlive any one failure (a database outage)
            log.exception("time-out sweep failed; trying again shortly")
            cancelled = []
        for transaction_id, registry in cancelled:
            log.warning("%s cancelled: %s did not answer before its acceptance time-out",
                        transaction_id, registry, extra={"peer": registry})  # fmt: skip
        if cancelled:
            wake()
        await pause(stopping, 0.5)


_CODES = frozenset(code.value for code in Code)


def _requested(message: OutboxMessage) -> bool:
    """An AcquisitionRequest, whose receipt may carry the acquirer's decision."""
    return message.payload_type == ACQUISITION_REQUEST and bool(message.transaction_id)


def _decided(receipt: transaction_pb2.Receipt | Refusal | None) -> Status | None:
    """The acquirer's decision carried in a verified receipt to an AcquisitionRequest
    (ACCEPTED or REJECTED), or None: it decides later."""
    if not isinstance(receipt, transaction_pb2.Receipt):
        return None
    if receipt.accepted and receipt.status == Status.ACCEPTED.value:
        return Status.ACCEPTED
    if not receipt.accepted or receipt.status == Status.REJECTED.value:
        return Status.REJECTED
    return None
