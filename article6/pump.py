"""The pump: delivery of an outbox (``article6.outbox``), one for the hub and every registry.

A message a process writes while its pump runs is inserted already claimed by that process
and handed to the pump once committed (``HandOff``), so it leaves at once. Everything else
due (retries, lapsed claims, what a command line wrote) is claimed from the database: every
poll interval while there is work, backing off to once a second when there is none. Claims
are short leases (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes share the
work and a crashed one's claims lapse within seconds; on SQLite, where one process owns the
database, a starting process releases them at once).

Each recipient has its own **lane**: its queue of claimed messages, at most ``lanes``
batches in flight to it, and a circuit breaker (``article6.breaker``). A slow, silent or
backlogged recipient therefore holds up only its own messages, and once its breaker opens
the pump stops paying an RPC deadline per batch to it, probes it with one message now and
then, and leaves its messages in the outbox, due, until it answers. A registry's pump has one
lane, to the hub. Messages leave through the ``Transport`` (gRPC batches in service,
``InMemoryTransport`` in tests), and are marked delivered only once the peer's signed receipt
verifies (on the event loop, as it arrives). Failures back off exponentially with jitter
(``article6.retry``, persisted as ``next_attempt_at``) until the policy gives up, then become
dead letters. A retry refused as stale (1036) proves the peer never recorded it, so it is
re-stamped and re-signed under the same message id (docs/PROTOCOL.md section 7) and claimed
again at once. A stopping process's pump stops at once, not after its poll interval.

What a receipt means is the owner's (``Peer``): the hub applies the acquiring registry's
decision or leg confirmation, a registry settles its proposal; each in the same unit of work
that marks the message delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from article6.batch import BatchClient, Result, answered, receipt_to
from article6.breaker import Breaker, BreakerSettings, BreakerState
from article6.codes import Code, Refusal
from article6.envelope import reseal
from article6.keys import KeyDirectory, SigningKey
from article6.limits import (
    IDLE_CLAIM_SECONDS,
    LEASE_MARGIN_SECONDS,
    LOOP_PAUSE_SECONDS,
    MAX_BATCH_ENVELOPES,
    QUEUED_BATCHES_PER_LANE,
)
from article6.outbox import Outbox, OutboxMessage, claim, delivered, failed, release_claims
from article6.refusals import RefusalLog
from article6.retry import RetryPolicy
from article6.service import client_options
from article6.status import Failure, failure_of
from article6.tls import TlsMaterial, secure_channel
from article6.unit import Unit
from article6.v1 import envelope_pb2, transaction_pb2

T = TypeVar("T")
Write = Callable[[Callable[[Unit], T]], Awaitable[T]]
"""Apply a change in its own unit of work through the process's writer; returns once durable."""


class Transport(Protocol):
    """The one way out: send each (unary RPC name, envelope) to ``recipient``; the reply or
    failure of each, in order."""

    async def send(
        self, recipient: str, items: Sequence[tuple[str, envelope_pb2.Envelope]], timeout: float
    ) -> list[Result]: ...


class Channels:
    """One mTLS channel per peer, made on first use, at the endpoint ``endpoint`` gives; gRPC's
    own reconnect back-off is capped at ``reconnect_max_seconds`` (the sender's), so a peer
    that comes back is reached by the next attempt."""

    def __init__(
        self, endpoint: Callable[[str], str], tls: TlsMaterial, reconnect_max_seconds: float
    ) -> None:
        self.endpoint = endpoint
        self.tls = tls
        self.options = client_options(reconnect_max_seconds)
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, peer: str) -> grpc.aio.Channel:
        channel = self._channels.get(peer)
        if channel is None:
            channel = secure_channel(self.endpoint(peer), peer, self.tls, self.options)
            self._channels[peer] = channel
        return channel

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()


class GrpcTransport:
    """Batches over gRPC (``article6.batch.BatchClient``), one client per recipient, on the
    channel ``channel`` gives for it."""

    def __init__(
        self, channel: Callable[[str], grpc.aio.Channel], service: str, batch_rpc: str
    ) -> None:
        self.channel = channel
        self.service = service
        self.batch_rpc = batch_rpc
        self._clients: dict[str, BatchClient] = {}

    async def send(
        self, recipient: str, items: Sequence[tuple[str, envelope_pb2.Envelope]], timeout: float
    ) -> list[Result]:
        client = self._clients.get(recipient)
        if client is None:
            client = BatchClient(self.channel(recipient), self.service, self.batch_rpc)
            self._clients[recipient] = client
        # wait_for_ready: an attempt waits (up to its deadline) for a reconnecting channel.
        return await client.send(items, timeout)


Answer = Callable[[str, str, envelope_pb2.Envelope], Awaitable[envelope_pb2.Envelope]]
"""A peer in the same process: (recipient, RPC name, envelope) to its reply, or a raised
``Refusal``."""


class InMemoryTransport:
    """Delivery without a network, for tests: each envelope goes to ``answer``; a refusal it
    raises comes back as the gRPC failure it would have been on the wire."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    async def send(
        self, recipient: str, items: Sequence[tuple[str, envelope_pb2.Envelope]], timeout: float
    ) -> list[Result]:
        results: list[Result] = []
        for rpc, envelope in items:
            try:
                results.append(await asyncio.wait_for(self.answer(recipient, rpc, envelope),
                                                      timeout))  # fmt: skip
            except Refusal as refusal:
                results.append(failure_of(refusal))
            except TimeoutError:
                results.append(Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded",
                                       None))  # fmt: skip
        return results


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: the peer's reply, or why there was none; and the reply's
    receipt, verified when it arrived (or why it is not one)."""

    message: OutboxMessage
    result: Result
    started: datetime | None = None
    receipt: transaction_pb2.Receipt | Refusal | None = None


class Peer(Protocol):
    """What the pump's owner does with attempts, in the unit of work that records them."""

    def attempted(self, unit: Unit, attempt: Attempt) -> None:
        """Any attempt, before its outcome is recorded."""

    def delivered(
        self, unit: Unit, receipts: Sequence[tuple[OutboxMessage, transaction_pb2.Receipt]]
    ) -> None:
        """The verified receipts of one batch, in the order sent; the messages are marked
        delivered in the same unit."""


class Counts(Protocol):
    """The pump's metrics (``article6.metrics.DeliveryMetrics``)."""

    def attempt(self, recipient: str, failure: Failure | None) -> None: ...

    def dead_letter(self, recipient: str) -> None: ...

    def breaker(self, recipient: str, state: BreakerState) -> None: ...


@dataclass(frozen=True)
class DeliveryConfig:
    """A process's ``[delivery]`` table: the hub's and every registry's alike."""

    give_up_after_seconds: float = 72 * 3600.0  # a peer's weekend outage, and then some
    max_attempts: int = 0  # 0: no limit by count
    backoff_initial_seconds: float = 0.2
    backoff_max_seconds: float = 30.0
    rpc_timeout_seconds: float = 5.0
    poll_interval_seconds: float = 0.05
    batch_size: int = 64  # messages in one batch
    lanes: int = 2  # batches in flight to one recipient: one being answered while the next goes
    breaker_failures: int = 3
    breaker_open_seconds: float = 1.0
    breaker_max_open_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("give_up_after_seconds", "rpc_timeout_seconds", "poll_interval_seconds",
                     "backoff_initial_seconds", "breaker_open_seconds"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"[delivery] {name} must be positive")
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("[delivery] backoff_max_seconds is below backoff_initial_seconds")
        if self.breaker_max_open_seconds < self.breaker_open_seconds:
            raise ValueError("[delivery] breaker_max_open_seconds is below breaker_open_seconds")
        if not 1 <= self.batch_size <= MAX_BATCH_ENVELOPES:
            raise ValueError(f"[delivery] batch_size must be 1 to {MAX_BATCH_ENVELOPES}")
        if self.lanes < 1 or self.breaker_failures < 1 or self.max_attempts < 0:
            raise ValueError("[delivery] lanes and breaker_failures must be at least 1, "
                             "max_attempts at least 0")  # fmt: skip

    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.backoff_initial_seconds, self.backoff_max_seconds,
                           self.give_up_after_seconds, self.max_attempts)  # fmt: skip

    def breaker(self) -> BreakerSettings:
        return BreakerSettings(self.breaker_failures, self.breaker_open_seconds,
                               self.breaker_max_open_seconds)  # fmt: skip


@dataclass(frozen=True)
class Kind:
    """What the pump needs of a payload type: its class (to re-stamp) and its unary RPC."""

    payload: type[Message]
    rpc: str


@dataclass
class Lane:
    """One recipient's share of delivery: what is queued for it, what is in flight to it,
    and whether it answers."""

    recipient: str
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


@dataclass(frozen=True)
class Source:
    """Where a pump's messages wait (the process's outbox, whose hand-off brings them at commit)
    and the process's writer (every claim and record is a change of its own)."""

    outbox: Outbox
    write: Write[Any]


@dataclass(frozen=True)
class Signer:
    """Who sends: its registry id, its signing key (to re-stamp a stale retry) and the
    peers' public keys (to verify their receipts)."""

    sender: str
    key: SigningKey
    directory: KeyDirectory


class Pump:
    def __init__(
        self,
        *,
        source: Source,
        transport: Transport,
        peer: Peer,
        config: DeliveryConfig,
        kinds: Mapping[str, Kind],
        signer: Signer,
        counts: Counts | None = None,
        log: logging.Logger,
    ) -> None:
        self.table, self.write = source.outbox.table, source.write
        self.hand_off = source.outbox.hand_off
        self.transport = transport
        self.peer = peer
        self.config = config
        self.retry = config.retry()
        self.kinds = kinds
        self.signer = signer
        self.counts = counts
        self.log = log
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

    def wake(self) -> None:
        """Something was written to the outbox that was not handed over (by an operator, a
        sweep): claim now rather than at the next poll."""
        self._claim_now = True
        self._wakeup.set()

    def dispatch(self, message: OutboxMessage) -> None:
        """A message this process just committed, claimed by it: queue it in its lane,
        without claiming it again. Called from the writer thread (after the commit)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._offer, (message,))

    def lane(self, recipient: str) -> Lane:
        lane = self._lanes.get(recipient)
        if lane is None:
            breaker = Breaker(self.config.breaker())
            lane = self._lanes[recipient] = Lane(recipient, breaker)
        return lane

    def lease(self) -> timedelta:
        return timedelta(seconds=2 * self.config.rpc_timeout_seconds + LEASE_MARGIN_SECONDS)

    def full_lanes(self) -> list[str]:
        """The recipients for which nothing is claimed: their lanes have a batch waiting, or
        rest after failures."""
        return [
            recipient
            for recipient, lane in self._lanes.items()
            if len(lane.queue) >= self.config.batch_size or lane.breaker.resting()
        ]

    async def run(self, stopping: asyncio.Event, recipients: Iterable[str] = ()) -> None:
        """Send what is queued in each lane as soon as the lane may send, and claim what else
        is due (retries, lapsed claims) for the lanes that have room. ``recipients``: those
        whose breaker gauges start at closed."""
        self._loop = loop = asyncio.get_running_loop()
        # What this process writes to the outbox meanwhile comes straight here at commit.
        self.hand_off.start(self.dispatch, self.lease())
        poll = self.config.poll_interval_seconds
        claim_every, claimed_at = poll, -IDLE_CLAIM_SECONDS
        for recipient in recipients:
            self._gauge(self.lane(recipient))
        stop = asyncio.create_task(self._wake_at(stopping))  # not after a whole poll interval
        try:
            while not stopping.is_set():
                self._wakeup.clear()  # first: what happens meanwhile wakes the next turn
                if self._claim_now or loop.time() - claimed_at >= claim_every:
                    self._claim_now, claimed_at = False, loop.time()
                    turned_away, self._turned_away = self._turned_away, []
                    try:
                        claimed = await self.write(partial(self._claim, turned_away))
                    except Exception:  # the loop must outlive any one failure (a database outage)
                        self.log.exception("delivery failed; trying again shortly")
                        await pause(stopping, LOOP_PAUSE_SECONDS)
                        continue
                    assert isinstance(claimed, list), claimed
                    self._offer(claimed)
                    claim_every = poll if claimed else min(2 * claim_every, IDLE_CLAIM_SECONDS)
                self._start_batches()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), claim_every)
        finally:
            stop.cancel()
            self.hand_off.stop()
            self._loop = None
            for task in self._tasks:
                task.cancel()

    async def _wake_at(self, stopping: asyncio.Event) -> None:
        await stopping.wait()
        self._wakeup.set()

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

    def _claim(self, turned_away: list[int], unit: Unit) -> list[OutboxMessage]:
        """Release the claims of messages turned away by full lanes, then claim due messages
        for the recipients whose lanes have room and may send."""
        if turned_away:
            release_claims(unit.connection, self.table, turned_away)
        now = datetime.now(UTC)
        return claim(unit.connection, self.table, now, self.config.batch_size,
                            self.lease(), self.full_lanes())  # fmt: skip

    def _start_batches(self) -> None:
        for lane in self._lanes.values():
            # A recipient that failed to answer its last batch gets one batch at a time.
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
            attempts = await self._send(lane.recipient, batch)
            self._judge(lane, attempts)
            self._observe(attempts)
            await self.write(partial(self._record_all, attempts=attempts))
            if any(_stale(attempt) for attempt in attempts):
                self._claim_now = True  # re-stamped and due now: not at the next poll
        except Exception:  # the claims lapse and the messages go again
            self.log.exception("delivery to %s failed; trying again shortly", lane.recipient)
        finally:
            lane.in_flight -= 1
            lane.release(batch)
            if lane.overflowed and len(lane.queue) < self.config.batch_size:
                lane.overflowed = False  # what it turned away is claimed now it has room
                self._claim_now = True
            self._wakeup.set()

    async def _send(self, recipient: str, messages: list[OutboxMessage]) -> list[Attempt]:
        items = [
            (self.kinds[m.payload_type].rpc, envelope_pb2.Envelope.FromString(m.envelope))
            for m in messages
        ]
        started = datetime.now(UTC)
        results = await self.transport.send(recipient, items, self.config.rpc_timeout_seconds)
        # Receipts are verified here, on the event loop, so that the writer (which every
        # change waits for) spends no time on signatures.
        return [
            Attempt(m, result, started, None if isinstance(result, Failure) else
                    receipt_to(m.message_id, result, directory=self.signer.directory,
                               recipient=self.signer.sender, peer=recipient))
            for m, result in zip(messages, results, strict=True)
        ]  # fmt: skip

    def _judge(self, lane: Lane, attempts: list[Attempt]) -> None:
        """Tell the lane's breaker whether the peer answered; say so when that changes."""
        results = [attempt.result for attempt in attempts]
        reason = str(results[0]) if results else ""
        warning = lane.breaker.record(answered(results), reason, lane.recipient)
        if lane.breaker.state is BreakerState.OPEN:
            lane.drop_queue()
        if warning:
            self.log.warning(warning, extra={"peer": lane.recipient})
        self._gauge(lane)

    def _gauge(self, lane: Lane) -> None:
        if self.counts is not None:
            self.counts.breaker(lane.recipient, lane.breaker.state)

    def _observe(self, attempts: list[Attempt]) -> None:
        """Count the attempts and log the refusals once each, as they happen: recording them
        is a change the writer may run again (a lost race, a failed group) or not at all."""
        for attempt in attempts:
            recipient, result, receipt = attempt.message.recipient, attempt.result, attempt.receipt
            failure = result if isinstance(result, Failure) else None
            if self.counts is not None:
                self.counts.attempt(recipient, failure)
            if failure is not None and failure.refusal is not None:
                self._refused_by(failure.refusal, recipient)
            elif isinstance(receipt, Refusal):
                self._refused_receipts(receipt, recipient)

    def _record_all(self, unit: Unit, attempts: list[Attempt]) -> None:
        """A batch's attempts in one change: the messages that arrived marked delivered in one
        statement, then what each receipt means."""
        arrived = [(attempt, self._record(unit, attempt)) for attempt in attempts]
        receipts = [(a.message, receipt) for a, receipt in arrived if receipt is not None]
        delivered(unit.connection, self.table, [m.id for m, _ in receipts], datetime.now(UTC))
        self.peer.delivered(unit, receipts)

    def _record(self, unit: Unit, attempt: Attempt) -> transaction_pb2.Receipt | None:
        """Record a failed attempt; the verified receipt of one that arrived."""
        message, result, now = attempt.message, attempt.result, datetime.now(UTC)
        self.peer.attempted(unit, attempt)
        if isinstance(result, Failure):
            if _stale(attempt):
                failed(unit.connection, self.table, message, str(result), now,
                              self._restamp(message))  # fmt: skip
                return None
            self._retry(unit, message, str(result))
            return None
        receipt = attempt.receipt
        assert receipt is not None, "a reply is verified as it arrives (_send)"
        if isinstance(receipt, Refusal):
            self._retry(unit, message, f"bad receipt: {receipt}")
            return None
        return receipt

    def _retry(self, unit: Unit, message: OutboxMessage, reason: str) -> None:
        attempts, now = message.attempts + 1, datetime.now(UTC)
        retry_at = self.retry.next_attempt(attempts, message.created_at or now, now)
        if retry_at is None:  # counted and told once it is so, whatever runs the change
            unit.after_commit(partial(self._dead_letter, message, attempts, reason))
        failed(unit.connection, self.table, message, reason, retry_at)

    def _dead_letter(self, message: OutboxMessage, attempts: int, reason: str) -> None:
        if self.counts is not None:
            self.counts.dead_letter(message.recipient)
        self.log.warning(
            "dead letter to %s after %d attempts: %s", message.recipient, attempts, reason,
            extra={"message_id": message.message_id, "peer": message.recipient,
                   "transaction_id": message.transaction_id},
        )  # fmt: skip

    def _restamp(self, message: OutboxMessage) -> bytes:
        envelope = envelope_pb2.Envelope.FromString(message.envelope)
        payload_class = self.kinds[envelope.payload_type].payload
        resealed = reseal(envelope, payload_class, [self.signer.key], datetime.now(UTC))
        return resealed.SerializeToString()


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if the process is stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


def _stale(attempt: Attempt) -> bool:
    """Refused as stale (1036): the peer never recorded it, so it goes again re-stamped."""
    result = attempt.result
    return (
        isinstance(result, Failure)
        and result.refusal is not None
        and result.refusal.code is Code.CLOCK_SKEW
    )
