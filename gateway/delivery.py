"""Delivery of the outbox: one lane per registry, and the time-out sweep.

A message the hub writes is inserted already claimed by the writing process and handed to its
delivery loop once committed (``dispatch``), so it leaves at once. Everything else due
(retries, lapsed claims) is claimed from the database: every poll interval while there is
work, backing off to once a second when there is none. Claims are short leases (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL, so several hub processes share the work and a crashed
one's claims lapse within seconds; on SQLite, where one process owns the database, a starting
hub releases them at once).

Each registry has its own **lane**: its queue of claimed messages, at most ``lanes`` batches
in flight to it, and a circuit breaker (``article6.breaker``). A slow, silent or backlogged
registry therefore holds up only its own messages: no other registry's message ever waits
behind it, and once its breaker opens the hub stops paying an RPC deadline per batch to it,
probes it with one message now and then, and leaves its messages in the outbox, due, until
it answers. Messages are delivered over mTLS (each lane's batch through
``Registry.DeliverBatch``, or one by one through ``Registry.Deliver`` to a registry that does
not serve batches), and marked delivered only once the registry's signed receipt verifies.
Failures back off exponentially with jitter (``article6.retry``, persisted as
``next_attempt_at``) for as long as ``give_up_after_seconds`` (registries' outages last hours),
then become dead letters, which an operator can put back (``article6-admin retry``). A late
retry refused as stale (1036) proves the registry never recorded it, so it is re-stamped and
re-signed under the same message id, as docs/PROTOCOL.md section 7 prescribes.

The receipt to an AcquisitionRequest carries the acquiring registry's decision, and the receipt
to a completion notice the registry's leg confirmation; each is applied in the same SQL
transaction that marks the message delivered. The first attempt to deliver an
AcquisitionRequest starts the acquiring registry's acceptance time-out (it could not have
answered before), so a busy hub never cancels a transfer that was waiting in its own outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import grpc.aio
from google.protobuf.message import Message

from article6.batch import BatchClient, answered, receipt_to
from article6.breaker import Breaker, BreakerSettings, BreakerState
from article6.codes import Code, Refusal
from article6.envelope import reseal
from article6.keys import KeyDirectory
from article6.limits import (
    IDLE_CLAIM_SECONDS,
    LEASE_MARGIN_SECONDS,
    LOOP_PAUSE_SECONDS,
    QUEUED_BATCHES_PER_LANE,
)
from article6.model import Status
from article6.refusals import RefusalLog
from article6.retry import RetryPolicy
from article6.service import client_options
from article6.status import Failure
from article6.tls import TlsMaterial, secure_channel
from article6.unit import Unit
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
    release_claims,
)

log = logging.getLogger("gateway.delivery")

STATUS_NOTICE = "article6.v1.StatusNotice"
PAYLOADS: dict[str, type[Message]] = {
    "article6.v1.AcquisitionRequest": transaction_pb2.AcquisitionRequest,
    "article6.v1.StatusNotice": transaction_pb2.StatusNotice,
}


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: the registry's reply, or why there was none; and the reply's
    receipt, verified when it arrived (or why it is not one)."""

    message: OutboxMessage
    result: envelope_pb2.Envelope | Failure
    started: datetime | None = None
    receipt: transaction_pb2.Receipt | Refusal | None = None


@dataclass
class Lane:
    """One registry's share of delivery: what is queued for it, what is in flight to it, and
    whether it answers."""

    registry: str
    breaker: Breaker
    queue: deque[OutboxMessage] = field(default_factory=deque)
    held: set[int] = field(default_factory=set)  # outbox ids queued or in flight
    in_flight: int = 0
    overflowed: bool = False  # turned a message away for lack of room since it last had some

    def offer(self, message: OutboxMessage, bound: int) -> bool:
        """Queue a claimed message, unless it is already held or the lane is open (then its
        claim lapses and it is claimed again later) or full; False only for the last."""
        if message.id in self.held or self.breaker.resting():
            return True
        if len(self.queue) >= bound:
            self.overflowed = True
            return False
        self.queue.append(message)
        self.held.add(message.id)
        return True

    def take(self, size: int) -> list[OutboxMessage]:
        return [self.queue.popleft() for _ in range(min(size, len(self.queue)))]

    def release(self, messages: Iterable[OutboxMessage]) -> None:
        for message in messages:
            self.held.discard(message.id)

    def drop_queue(self) -> None:
        """The breaker opened: what is queued stays in the outbox, due once its claim lapses."""
        self.release(self.queue)
        self.queue.clear()


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
        self._lanes: dict[str, Lane] = {}
        self._refused_by = RefusalLog(log, inbound=False)
        self._refused_receipts = RefusalLog(log, inbound=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()  # a lane may have something to send
        self._claim_now = True
        # Claimed messages a full lane turned away, whose claims the next claim releases: as
        # many as are written while a lane is full, for at most one claim interval.
        self._turned_away: list[int] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.retry = RetryPolicy(
            config.backoff_initial_seconds, config.backoff_max_seconds,
            config.give_up_after_seconds, config.max_attempts,
        )  # fmt: skip
        self.breaker_settings = BreakerSettings(
            config.breaker_failures, config.breaker_open_seconds, config.breaker_max_open_seconds
        )

    def wake(self) -> None:
        """Something was written to the outbox (by an operator, the time-out sweep): claim
        now rather than at the next poll."""
        self._claim_now = True
        self._wakeup.set()

    def dispatch(self, message: OutboxMessage) -> None:
        """A message this process just committed, claimed by it: queue it in its registry's
        lane, without claiming it again. Called from the writer thread (after the commit)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._offer, (message,))

    def lane(self, registry: str) -> Lane:
        lane = self._lanes.get(registry)
        if lane is None:
            lane = self._lanes[registry] = Lane(registry, Breaker(self.breaker_settings))
        return lane

    def _offer(self, messages: Iterable[OutboxMessage]) -> None:
        """Queue claimed messages in their lanes. A full lane turns a message away: its claim
        is released at the next claim, so that it is claimed again as soon as the lane has
        room, rather than once its lease lapses (seconds in which it would not move)."""
        bound = QUEUED_BATCHES_PER_LANE * self.config.batch_size
        for message in messages:
            if not self.lane(message.recipient).offer(message, bound):
                self._turned_away.append(message.id)
                self._claim_now = True
        self._wakeup.set()

    def _lease(self) -> timedelta:
        return timedelta(seconds=2 * self.config.rpc_timeout_seconds + LEASE_MARGIN_SECONDS)

    async def run(self, stopping: asyncio.Event) -> None:
        """Send what is queued in each lane as soon as the lane may send, and claim what else
        is due (retries, another process's lapsed claims) for the lanes that have room."""
        self._loop = loop = asyncio.get_running_loop()
        # What this process writes to the outbox meanwhile comes straight here at commit.
        self.mailer.hand_off.start(self.dispatch, self._lease())
        poll = self.config.poll_interval_seconds
        claim_every, claimed_at = poll, -IDLE_CLAIM_SECONDS
        if self.metrics is not None:
            for registry in self.registries():
                self.metrics.breaker_state.labels(registry).set(BreakerState.CLOSED.value)
        try:
            while not stopping.is_set():
                self._wakeup.clear()  # first: what happens meanwhile wakes the next turn
                if self._claim_now or loop.time() - claimed_at >= claim_every:
                    self._claim_now, claimed_at = False, loop.time()
                    turned_away, self._turned_away = self._turned_away, []
                    try:
                        claimed = await self.database.write(partial(self._claim, turned_away))
                    except Exception:  # the loop must outlive any one failure (a database outage)
                        log.exception("delivery failed; trying again shortly")
                        await pause(stopping, LOOP_PAUSE_SECONDS)
                        continue
                    self._offer(claimed)
                    claim_every = poll if claimed else min(2 * claim_every, IDLE_CLAIM_SECONDS)
                self._start_batches()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), claim_every)
        finally:
            self.mailer.hand_off.stop()
            self._loop = None
            for task in self._tasks:
                task.cancel()

    def _start_batches(self) -> None:
        for lane in self._lanes.values():
            # A registry that failed to answer its last batch gets one batch at a time.
            limit = 1 if lane.breaker.failed_in_row else self.config.lanes
            while lane.queue and lane.in_flight < limit and lane.breaker.allows():
                size = 1 if lane.breaker.probe() else self.config.batch_size
                lane.in_flight += 1
                task = asyncio.create_task(self._deliver(lane, lane.take(size)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, lane: Lane, batch: list[OutboxMessage]) -> None:
        """Deliver one lane's batch, then record every outcome in one commit. A failure
        leaves the claims to lapse."""
        try:
            attempts = await self._send(lane.registry, batch)
            self._judge(lane, attempts)
            await self.database.write(partial(self._record_all, attempts=attempts))
        except Exception:  # the claims lapse and the messages go again
            log.exception("delivery to %s failed; trying again shortly", lane.registry)
        finally:
            lane.in_flight -= 1
            lane.release(batch)
            if lane.overflowed and len(lane.queue) < self.config.batch_size:
                lane.overflowed = False  # what it turned away is claimed now it has room
                self._claim_now = True
            self._wakeup.set()

    def _judge(self, lane: Lane, attempts: list[Attempt]) -> None:
        """Tell the lane's breaker whether the registry answered; say so when that changes."""
        results = [attempt.result for attempt in attempts]
        reason = str(results[0]) if results else ""
        warning = lane.breaker.record(answered(results), reason, lane.registry)
        if lane.breaker.state is BreakerState.OPEN:
            lane.drop_queue()
        if warning:
            log.warning(warning, extra={"peer": lane.registry})
        if self.metrics is not None:
            self.metrics.breaker_state.labels(lane.registry).set(lane.breaker.state.value)

    def _claim(self, turned_away: list[int], unit: Unit) -> list[OutboxMessage]:
        """Release the claims of messages turned away by full lanes, then claim due messages
        for the registries whose lanes have room and may send."""
        if turned_away:
            release_claims(unit.connection, turned_away)
        now = datetime.now(UTC)
        return claim_outbox(
            unit.connection, now, self.config.batch_size, self._lease(), self.full_lanes()
        )

    def full_lanes(self) -> list[str]:
        """The registries for which nothing is claimed: their lanes have a batch waiting, or
        rest after failures."""
        return [
            registry
            for registry, lane in self._lanes.items()
            if len(lane.queue) >= self.config.batch_size or lane.breaker.resting()
        ]

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
        started = datetime.now(UTC)
        # wait_for_ready: an attempt waits (up to its deadline) for a reconnecting channel.
        results = await client.send(items, self.config.rpc_timeout_seconds)
        # Receipts are verified here, on the event loop, so that the writer (which every
        # change waits for) spends no time on signatures.
        return [
            Attempt(m, result, started, None if isinstance(result, Failure) else
                    self._receipt(m, result))
            for m, result in zip(messages, results, strict=True)
        ]  # fmt: skip

    def _receipt(
        self, message: OutboxMessage, reply: envelope_pb2.Envelope
    ) -> transaction_pb2.Receipt | Refusal:
        return receipt_to(message.message_id, reply, directory=self.directory,
                          recipient=self.hub_id, peer=message.recipient)  # fmt: skip

    def _record_all(self, unit: Unit, attempts: list[Attempt]) -> None:
        for attempt in attempts:
            self._record(unit, attempt)

    def _record(self, unit: Unit, attempt: Attempt) -> None:
        message, result, now = attempt.message, attempt.result, datetime.now(UTC)
        self._count(message.recipient, result)
        if message.attempts == 0 and message.payload_type == ACQUISITION_REQUEST:
            assert message.transaction_id, message
            self.lifecycle.offered(unit, message.transaction_id, attempt.started or now)
        if isinstance(result, Failure):
            if result.refusal is not None:
                self._refused_by(result.refusal, message.recipient)
            if result.refusal is not None and result.refusal.code is Code.CLOCK_SKEW:
                outbox_failed(unit.connection, message, str(result), now, self._restamp(message))
                return
            self._retry(unit, message, str(result))
            return
        receipt = attempt.receipt
        assert receipt is not None, "a reply is verified as it arrives (_send)"
        if isinstance(receipt, Refusal):
            self._refused_receipts(receipt, message.recipient)
            self._retry(unit, message, f"bad receipt: {receipt}")
            return
        self._delivered(unit, message, receipt)

    def _count(self, registry: str, result: envelope_pb2.Envelope | Failure) -> None:
        if self.metrics is None:
            return
        self.metrics.delivery_attempts.labels(registry).inc()
        if isinstance(result, Failure):
            self.metrics.delivery_failures.labels(registry, result.reason).inc()

    def _delivered(
        self, unit: Unit, message: OutboxMessage, receipt: transaction_pb2.Receipt
    ) -> None:
        now = datetime.now(UTC)
        outbox_delivered(unit.connection, message.id, now)
        if message.payload_type == ACQUISITION_REQUEST and message.transaction_id:
            self._decision(unit, message.transaction_id, receipt, now)
        if receipt.HasField("leg_confirmation"):
            self._confirmed(unit, message, receipt.leg_confirmation, now)

    def _decision(
        self,
        unit: Unit,
        transaction_id: str,
        receipt: transaction_pb2.Receipt,
        now: datetime,
    ) -> None:
        results = [(Code(r.code), r.detail) for r in receipt.results if r.code in _CODES]
        if receipt.accepted and receipt.status == Status.ACCEPTED.value:
            self.lifecycle.decide(unit, transaction_id, Status.ACCEPTED, [], now)
        elif not receipt.accepted or receipt.status == Status.REJECTED.value:
            self.lifecycle.decide(unit, transaction_id, Status.REJECTED, results, now)
        # Otherwise the registry decides later and calls Hub.NotifyStatus.

    def _confirmed(
        self,
        unit: Unit,
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
            outcome = confirm(unit, registry, confirmation, now)
        except Refusal as refusal:  # raised before anything is written
            outcome = Outcome(transaction_id, None, [(refusal.code, refusal.detail)])
        if outcome.results:
            log.warning("leg confirmation from %s of %s: %s", registry, transaction_id,
                        "; ".join(f"{code.value} {detail}" for code, detail in outcome.results),
                        extra={"peer": registry, "transaction_id": transaction_id})  # fmt: skip

    def _retry(self, unit: Unit, message: OutboxMessage, reason: str) -> None:
        attempts, now = message.attempts + 1, datetime.now(UTC)
        retry_at = self.retry.next_attempt(attempts, message.created_at or now, now)
        if retry_at is None:
            if self.metrics is not None:
                self.metrics.dead_letters.labels(message.recipient).inc()
            log.warning(
                "dead letter to %s after %d attempts: %s", message.recipient, attempts, reason,
                extra={"message_id": message.message_id, "peer": message.recipient,
                       "transaction_id": message.transaction_id},
            )  # fmt: skip
        outbox_failed(unit.connection, message, reason, retry_at)

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


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if the process is stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


_CODES = frozenset(code.value for code in Code)
