"""Delivery of the outbox, and the time-out sweep.

A message the hub writes is inserted already claimed by the writing process and handed to its
delivery loop once committed (``dispatch``), so it leaves at once. Everything else due
(retries, lapsed claims) is claimed once per poll interval. Claims are short leases (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL, so several hub processes share the work and a crashed
one's claims lapse within seconds; on SQLite, where one process owns the database, a starting
hub releases them at once). Messages are delivered over mTLS
(each registry's due messages together through ``Registry.DeliverBatch``, or one by one
through ``Registry.Deliver`` to a registry that does not serve batches), and marked delivered
only once the registry's signed receipt verifies. Failures back off exponentially with jitter
(tenacity's wait maths, persisted as ``next_attempt_at``) up to ``max_attempts``, then become
dead letters. A late retry refused as stale (1036) proves the registry never recorded it, so
it is re-stamped and re-signed under the same message id, as docs/PROTOCOL.md section 7
prescribes.

The receipt to an AcquisitionRequest carries the acquiring registry's decision, and the receipt
to a completion notice the registry's leg confirmation; each is applied in the same SQL
transaction that marks the message delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import grpc.aio
from google.protobuf.message import Message
from sqlalchemy import Connection

from article6.batch import BatchClient
from article6.codes import Code, Refusal
from article6.envelope import open_envelope, reseal
from article6.keys import KeyDirectory
from article6.model import Status
from article6.retry import Backoff
from article6.service import client_options
from article6.status import Failure
from article6.tls import TlsMaterial, secure_channel
from article6.v1 import envelope_pb2, reconciliation_pb2, transaction_pb2
from gateway.config import DeliveryConfig, RegistryEntry
from gateway.legs import confirm
from gateway.lifecycle import ACQUISITION_REQUEST, Lifecycle, Outcome
from gateway.mailer import Mailer
from gateway.metrics import HubMetrics
from gateway.storage.database import Database
from gateway.storage.records import (
    OutboxMessage,
    claim_outbox,
    outbox_delivered,
    outbox_failed,
)

log = logging.getLogger("gateway.delivery")

RECEIPT = {"article6.v1.Receipt": transaction_pb2.Receipt}
STATUS_NOTICE = "article6.v1.StatusNotice"
PAYLOADS: dict[str, type[Message]] = {
    "article6.v1.AcquisitionRequest": transaction_pb2.AcquisitionRequest,
    "article6.v1.StatusNotice": transaction_pb2.StatusNotice,
}
# A claim outlives its delivery attempt (at most one RPC time-out, all in a batch run at once)
# by this margin; a crashed process's claims lapse after the same short while.
LEASE_MARGIN_SECONDS = 2.0
LOOP_PAUSE_SECONDS = 1.0


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: the registry's reply, or why there was none."""

    message: OutboxMessage
    result: envelope_pb2.Envelope | Failure


class Deliverer:
    def __init__(
        self,
        config: DeliveryConfig,
        database: Database,
        lifecycle: Lifecycle,
        mailer: Mailer,
        directory: KeyDirectory,
        tls: TlsMaterial,
        registries: Callable[[], Mapping[str, RegistryEntry]],
        metrics: HubMetrics | None = None,
    ) -> None:
        self.hub_id = mailer.hub_id
        self.config = config
        self.database = database
        self.lifecycle = lifecycle
        self.mailer = mailer
        self.directory = directory
        self.tls = tls
        self.registries = registries
        self.metrics = metrics
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._clients: dict[str, BatchClient] = {}
        self._dispatched: list[OutboxMessage] = []  # committed, claimed, not yet sent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()
        self.backoff = Backoff(config.backoff_initial_seconds, config.backoff_max_seconds)

    def wake(self) -> None:
        """Something was written to the outbox: look now rather than at the next poll."""
        self._wakeup.set()

    def dispatch(self, message: OutboxMessage) -> None:
        """A message this process just committed, claimed by it: send it with the next batch,
        without claiming it again. Called from the writer thread (after the commit)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatched.append, message)
            loop.call_soon_threadsafe(self._wakeup.set)

    def _lease(self) -> timedelta:
        return timedelta(seconds=2 * self.config.rpc_timeout_seconds + LEASE_MARGIN_SECONDS)

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver what this process dispatches as soon as it is committed, and claim what
        else is due (retries, another process's lapsed claims) once per poll interval or when
        woken; up to ``config.lanes`` batches in flight: while one waits for the registries'
        answers (their commits), the next goes."""
        assert self.config.lanes >= 1, self.config
        self._loop = asyncio.get_running_loop()
        self.mailer.lease, self.mailer.dispatch = self._lease(), self.dispatch
        in_flight: set[asyncio.Task[None]] = set()
        claimed_at = -math.inf  # loop time of the last claim
        try:
            while not stopping.is_set():
                if len(in_flight) >= self.config.lanes:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                # Cleared before the claim, not after: a change committed while the claim runs
                # wakes the next one rather than waiting out the poll interval.
                self._wakeup.clear()
                # Dispatched messages first, but a claim at least once per poll interval, so
                # that retries are not starved by a steady flow of new messages.
                now = self._loop.time()
                claim = now - claimed_at >= self.config.poll_interval_seconds
                try:
                    batch = [] if claim else self._take_dispatched()
                    if not batch:
                        batch, claimed_at = await self.database.write(self._claim), now
                except Exception:  # the loop must outlive any one failure (a database outage)
                    log.exception("delivery failed; trying again shortly")
                    await pause(stopping, LOOP_PAUSE_SECONDS)
                    continue
                if batch:
                    task = asyncio.create_task(self._deliver(batch))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.config.poll_interval_seconds)
        finally:
            self.mailer.dispatch = None  # from now on a message waits for a claim
            self._loop = None
            for task in in_flight:
                task.cancel()

    def _take_dispatched(self) -> list[OutboxMessage]:
        taken = self._dispatched[: self.config.batch_size]
        del self._dispatched[: self.config.batch_size]
        return taken

    async def _deliver(self, batch: list[OutboxMessage]) -> None:
        """Deliver claimed messages, each registry's in batches and all registries at once,
        then record every outcome in one commit. A failure leaves the claims to lapse."""
        try:
            by_registry: dict[str, list[OutboxMessage]] = {}
            for message in batch:
                by_registry.setdefault(message.recipient, []).append(message)
            sent = await asyncio.gather(*(self._send(r, ms) for r, ms in by_registry.items()))
            attempts = [attempt for attempts in sent for attempt in attempts]
            await self.database.write(partial(self._record_all, attempts=attempts))
        except Exception:  # the claims lapse and the messages go again
            log.exception("delivery failed; trying again shortly")

    def _claim(self, connection: Connection) -> list[OutboxMessage]:
        return claim_outbox(connection, datetime.now(UTC), self.config.batch_size, self._lease())

    def channel(self, registry: str) -> grpc.aio.Channel:
        """The channel to a registry, made once (deliveries and reconciliation share it)."""
        channel = self._channels.get(registry)
        if channel is None:
            endpoint = self.registries()[registry].endpoint
            options = client_options(self.config.backoff_max_seconds)
            channel = secure_channel(endpoint, registry, self.tls, options)
            self._channels[registry] = channel
        return channel

    async def _send(self, registry: str, messages: list[OutboxMessage]) -> list[Attempt]:
        client = self._clients.get(registry)
        if client is None:
            client = BatchClient(self.channel(registry), "article6.v1.Registry", "DeliverBatch")
            self._clients[registry] = client
        items = [("Deliver", envelope_pb2.Envelope.FromString(m.envelope)) for m in messages]
        # wait_for_ready: an attempt waits (up to its deadline) for a reconnecting channel.
        results = await client.send(items, self.config.rpc_timeout_seconds)
        return [Attempt(m, result) for m, result in zip(messages, results, strict=True)]

    def _record_all(self, connection: Connection, attempts: list[Attempt]) -> None:
        for attempt in attempts:
            self._record(connection, attempt)

    def _record(self, connection: Connection, attempt: Attempt) -> None:
        message, result = attempt.message, attempt.result
        self._count(message.recipient, result)
        if isinstance(result, Failure):
            if result.refusal is not None and result.refusal.code is Code.CLOCK_SKEW:
                now = datetime.now(UTC)
                outbox_failed(connection, message, str(result), now, self._restamp(message))
                return
            self._retry(connection, message, str(result))
            return
        try:
            self._delivered(connection, message, result)
        except Refusal as refusal:  # raised before anything is written for this message
            self._retry(connection, message, f"bad receipt: {refusal}")

    def _count(self, registry: str, result: envelope_pb2.Envelope | Failure) -> None:
        if self.metrics is None:
            return
        self.metrics.delivery_attempts.labels(registry).inc()
        if isinstance(result, Failure):
            self.metrics.delivery_failures.labels(registry, result.reason).inc()

    def _delivered(
        self, connection: Connection, message: OutboxMessage, reply: envelope_pb2.Envelope
    ) -> None:
        now = datetime.now(UTC)
        opened = open_envelope(
            reply,
            accepted=RECEIPT,
            directory=self.directory,
            recipient=self.hub_id,
            peer_identity=message.recipient,  # the TLS handshake verified the server
            now=now,
        )
        receipt = opened.payload
        assert isinstance(receipt, transaction_pb2.Receipt)
        if receipt.in_reply_to != message.message_id:
            raise Refusal(Code.RECIPIENT_WRONG, "receipt answers another message")
        outbox_delivered(connection, message.id, now)
        if message.payload_type == ACQUISITION_REQUEST and message.transaction_id:
            self._decision(connection, message.transaction_id, receipt, now)
        if receipt.HasField("leg_confirmation"):
            self._confirmed(connection, message, receipt.leg_confirmation, now)

    def _decision(
        self,
        connection: Connection,
        transaction_id: str,
        receipt: transaction_pb2.Receipt,
        now: datetime,
    ) -> None:
        results = [(Code(r.code), r.detail) for r in receipt.results if r.code in _CODES]
        if receipt.accepted and receipt.status == Status.ACCEPTED.value:
            self.lifecycle.decide(connection, transaction_id, Status.ACCEPTED, [], now)
        elif not receipt.accepted or receipt.status == Status.REJECTED.value:
            self.lifecycle.decide(connection, transaction_id, Status.REJECTED, results, now)
        # Otherwise the registry decides later and calls Hub.NotifyStatus.

    def _confirmed(
        self,
        connection: Connection,
        message: OutboxMessage,
        confirmation: reconciliation_pb2.LegConfirmation,
        now: datetime,
    ) -> None:
        """A leg confirmation in the receipt to a completion notice, compared at once as
        Hub.SubmitReconciliation compares one; a difference freezes the serials there."""
        transaction_id, registry = message.transaction_id, message.recipient
        if message.payload_type != STATUS_NOTICE or confirmation.transaction_id != transaction_id:
            log.warning("%s confirmed %s in its receipt to %s; ignored", registry,
                        confirmation.transaction_id[:64], message.message_id,
                        extra={"peer": registry, "message_id": message.message_id})  # fmt: skip
            return
        try:
            outcome = confirm(connection, registry, confirmation, now)
        except Refusal as refusal:  # raised before anything is written
            outcome = Outcome(transaction_id, None, [(refusal.code, refusal.detail)])
        if outcome.results:
            log.warning("leg confirmation from %s of %s: %s", registry, transaction_id,
                        "; ".join(f"{code.value} {detail}" for code, detail in outcome.results),
                        extra={"peer": registry, "transaction_id": transaction_id})  # fmt: skip

    def _retry(self, connection: Connection, message: OutboxMessage, reason: str) -> None:
        attempts = message.attempts + 1
        retry_at = None
        if attempts < self.config.max_attempts:
            retry_at = datetime.now(UTC) + timedelta(seconds=self.backoff.delay_seconds(attempts))
        else:
            if self.metrics is not None:
                self.metrics.dead_letters.labels(message.recipient).inc()
            log.warning(
                "dead letter to %s after %d attempts: %s", message.recipient, attempts, reason,
                extra={"message_id": message.message_id, "peer": message.recipient,
                       "transaction_id": message.transaction_id},
            )  # fmt: skip
        outbox_failed(connection, message, reason, retry_at)

    def _restamp(self, message: OutboxMessage) -> bytes:
        envelope = envelope_pb2.Envelope.FromString(message.envelope)
        payload_class = PAYLOADS[envelope.payload_type]
        resealed = reseal(envelope, payload_class, [self.mailer.key], datetime.now(UTC))
        return resealed.SerializeToString()

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()
        self._clients.clear()


async def expire_loop(
    database: Database, lifecycle: Lifecycle, wake: Callable[[], None], stopping: asyncio.Event
) -> None:
    """Cancel external transfers past their ``respond_by``, twice a second."""
    while not stopping.is_set():
        try:
            cancelled = await database.write(
                lambda c: lifecycle.cancel_expired(c, datetime.now(UTC))
            )
        except Exception:  # the loop must outlive any one failure (a database outage)
            log.exception("time-out sweep failed; trying again shortly")
            cancelled = 0
        if cancelled:
            log.info("cancelled %d transactions past their acceptance time-out", cancelled)
            wake()
        await pause(stopping, 0.5)


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if the process is stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


_CODES = frozenset(code.value for code in Code)
