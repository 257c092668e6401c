"""Serving Envelope RPCs: raw bytes in, refusals out as numbered gRPC statuses.

The hub and every registry serve services whose RPCs take and return an ``Envelope``. The
handlers registered here receive the raw request bytes, so malformed or oversized input is
refused with its own code (ENVELOPE_MALFORMED, MESSAGE_TOO_LARGE) rather than a generic
deserialization error, and any ``Refusal`` raised by a method ends the RPC through
``article6.status.abort``. Anything else is a fault of ours: it is logged here and the caller
gets INTERNAL with a fixed message, never the exception's text. gRPC's own receive limit
sits at four times ``max_bytes`` (``grpc_message_options``: 16 MiB), so an oversized
envelope gets the numbered code (1011); only a request over the transport's limit is cut off
by gRPC itself (RESOURCE_EXHAUSTED, no code), before it is buffered whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
import grpc.aio

from article6.codes import Code, Refusal
from article6.envelope import read_envelope, read_message
from article6.inbox import Answer, Taken
from article6.limits import (
    GRPC_LIMIT_MARGIN_BYTES,
    HANDSHAKE_TIMEOUT_SECONDS,
    IDLE_CONNECTION_SECONDS,
    MAX_BATCH_ENVELOPES,
    MAX_CONNECTIONS,
    MAX_ENVELOPE_BYTES,
)
from article6.ratelimit import RateLimiter
from article6.refusals import OnRefusal
from article6.status import abort, fault_details, status_details
from article6.tls import peer_identity
from article6.v1 import envelope_pb2

log = logging.getLogger("article6.service")
Context = grpc.aio.ServicerContext[bytes, bytes]
EnvelopeMethod = Callable[[envelope_pb2.Envelope, Context], Awaitable[envelope_pb2.Envelope]]


def grpc_message_options(max_bytes: int = MAX_ENVELOPE_BYTES) -> list[tuple[str, int]]:
    """Server or channel options: gRPC receives up to four times ``max_bytes``, so that what
    is over ``max_bytes`` reaches a handler and is refused with its code, and sends a little
    more than ``max_bytes`` (an envelope with its framing)."""
    receive = max(4 * max_bytes, max_bytes + GRPC_LIMIT_MARGIN_BYTES)
    send = max_bytes + GRPC_LIMIT_MARGIN_BYTES
    return [("grpc.max_receive_message_length", receive), ("grpc.max_send_message_length", send)]


def server_options(
    max_bytes: int = MAX_ENVELOPE_BYTES,
    handshake_seconds: float = HANDSHAKE_TIMEOUT_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
) -> list[tuple[str, int]]:
    """A server's options: message limits; the port not shared (a second process on it fails
    to bind, ``article6.process.listen``); connections that never finish TLS closed after
    ``handshake_seconds`` (gRPC's default is 120 s), idle ones after a while, and at most
    ``max_connections`` at once, so idle sockets cannot use up the process's descriptors."""
    return [
        *grpc_message_options(max_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.server_handshake_timeout_ms", int(handshake_seconds * 1000)),
        ("grpc.max_connection_idle_ms", int(IDLE_CONNECTION_SECONDS * 1000)),
        ("grpc.max_allowed_incoming_connections", max_connections),
    ]


def client_options(
    reconnect_max_seconds: float, max_bytes: int = MAX_ENVELOPE_BYTES
) -> list[tuple[str, int]]:
    """Channel options for a sender: message limits, and gRPC's own reconnect back-off capped
    at the sender's, so a peer that comes back is reached by the next attempt."""
    reconnect_ms = max(100, int(reconnect_max_seconds * 1000))
    return [
        *grpc_message_options(max_bytes),
        ("grpc.initial_reconnect_backoff_ms", min(100, reconnect_ms)),
        ("grpc.min_reconnect_backoff_ms", min(100, reconnect_ms)),
        ("grpc.max_reconnect_backoff_ms", reconnect_ms),
    ]


INTERNAL_DETAIL = "internal error: nothing was recorded; retry with back-off"


async def _answer(
    method: EnvelopeMethod,
    envelope: envelope_pb2.Envelope,
    context: Context,
    on_refusal: OnRefusal | None,
) -> envelope_pb2.Envelope | Refusal | None:
    """The method's reply, the refusal it raised, or None for a fault of ours.

    A fault's SQL transaction rolled back, so nothing was recorded and a retry is safe. The
    peer learns no more than that; the traceback (which may quote SQL and values) is logged.
    """
    try:
        return await method(envelope, context)
    except Refusal as refusal:
        if on_refusal is not None:
            on_refusal(refusal, peer_identity(context))
        return refusal
    except grpc.aio.AbortError:  # a method that ended the call itself
        raise
    except Exception:
        log.exception("unexpected failure handling a %s call", method.__name__)
        return None


def _admit(limiter: RateLimiter | None, context: Context, take: bool = True) -> None:
    """Refuse a caller over its rate (1041); with ``take`` false, only look."""
    if limiter is None:
        return
    caller, now = peer_identity(context) or "", time.monotonic()
    if not (limiter.admit(caller, now) if take else limiter.could_admit(caller, now)):
        raise Refusal(Code.RATE_LIMITED, "too many requests; retry with back-off")


def _handler(
    method: EnvelopeMethod,
    max_bytes: int,
    on_refusal: OnRefusal | None,
    limiter: RateLimiter | None,
) -> Callable[[bytes, Context], Awaitable[bytes]]:
    async def handle(raw: bytes, context: Context) -> bytes:
        try:
            _admit(limiter, context)
            envelope = read_envelope(raw, max_bytes)
        except Refusal as refusal:
            if on_refusal is not None:
                on_refusal(refusal, peer_identity(context))
            await abort(context, refusal)
        answer = await _answer(method, envelope, context, on_refusal)
        if isinstance(answer, Refusal):
            await abort(context, answer)
        if answer is None:
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_DETAIL)
        return answer.SerializeToString()

    return handle


def read_batch(raw: bytes, max_bytes: int = MAX_ENVELOPE_BYTES) -> envelope_pb2.EnvelopeBatch:
    """Parse raw request bytes into an EnvelopeBatch: a whole batch is held to one envelope's
    size limit, and to ``MAX_BATCH_ENVELOPES``."""
    batch = read_message(raw, envelope_pb2.EnvelopeBatch, max_bytes)
    if len(batch.envelopes) > MAX_BATCH_ENVELOPES:
        detail = f"{len(batch.envelopes)} envelopes, limit {MAX_BATCH_ENVELOPES}"
        raise Refusal(Code.BATCH_TOO_LARGE, detail)
    return batch


Take = Callable[[envelope_pb2.Envelope, Context], Taken]
"""Open one envelope of a recorded kind (verify it, parse it) and say what it does."""

ApplyAll = Callable[[Sequence[Taken]], Awaitable[Sequence[Answer]]]
"""Apply opened messages exactly once, together in one unit of work (``inbox.exactly_once_all``)."""


@dataclass(frozen=True)
class Batch:
    """A service's EnvelopeBatch RPC (``name``). The messages the receiver records (``takes``,
    by payload type) are opened one by one, then applied together in one unit of work
    (``apply``: one writer change, one inbox query, one commit); the others (``methods``,
    such as queries) are each answered as their unary RPC would answer them."""

    name: str
    takes: Mapping[str, Take]
    apply: ApplyAll
    methods: Mapping[str, EnvelopeMethod] = field(default_factory=dict)


def recorded(take: Take, apply: ApplyAll) -> EnvelopeMethod:
    """The unary RPC of a recorded message: a batch of one."""

    async def method(envelope: envelope_pb2.Envelope, context: Context) -> envelope_pb2.Envelope:
        (answer,) = await apply([take(envelope, context)])
        if isinstance(answer, Exception):
            raise answer
        return envelope_pb2.Envelope.FromString(answer)

    method.__name__ = getattr(take, "__name__", "recorded")
    return method


def _refused(
    refusal: Refusal, context: Context, on_refusal: OnRefusal | None
) -> envelope_pb2.BatchAnswer:
    if on_refusal is not None:
        on_refusal(refusal, peer_identity(context))
    return envelope_pb2.BatchAnswer(status=status_details(refusal))


def _answered(
    answer: Answer | None, context: Context, on_refusal: OnRefusal | None
) -> envelope_pb2.BatchAnswer:
    """A recorded message's answer as the batch gives it; None: a fault of ours, logged."""
    if isinstance(answer, Refusal):
        return _refused(answer, context, on_refusal)
    if isinstance(answer, Exception):
        log.error("unexpected failure applying a batched message", exc_info=answer)
    if answer is None or isinstance(answer, Exception):
        return envelope_pb2.BatchAnswer(status=fault_details(INTERNAL_DETAIL))
    return envelope_pb2.BatchAnswer(reply=envelope_pb2.Envelope.FromString(answer))


async def _one(
    method: EnvelopeMethod,
    envelope: envelope_pb2.Envelope,
    context: Context,
    on_refusal: OnRefusal | None,
) -> envelope_pb2.BatchAnswer:
    """An envelope the batch answers through its unary method (a query)."""
    answer = await _answer(method, envelope, context, on_refusal)
    if isinstance(answer, Refusal):
        return envelope_pb2.BatchAnswer(status=status_details(answer))
    if answer is None:
        return envelope_pb2.BatchAnswer(status=fault_details(INTERNAL_DETAIL))
    return envelope_pb2.BatchAnswer(reply=answer)


async def _applied(batch: Batch, taken: list[Taken]) -> Sequence[Answer | None]:
    if not taken:
        return []
    try:
        return await batch.apply(taken)
    except Refusal as refusal:  # a batch of one, refused
        return [refusal] * len(taken)
    except Exception:  # nothing of the batch was recorded; each may be retried
        log.exception("unexpected failure applying a batch of %d messages", len(taken))
        return [None] * len(taken)


def _batch_handler(
    batch: Batch,
    max_bytes: int,
    on_refusal: OnRefusal | None,
    limiter: RateLimiter | None,
) -> Callable[[bytes, Context], Awaitable[bytes]]:
    """Each envelope of a batch is answered as its unary RPC would answer it; the recorded
    ones are applied together, in the batch's order."""

    async def handle(raw: bytes, context: Context) -> bytes:
        try:
            _admit(limiter, context, take=False)  # no parsing for a caller with nothing left
            envelopes = read_batch(raw, max_bytes).envelopes
        except Refusal as refusal:
            if on_refusal is not None:
                on_refusal(refusal, peer_identity(context))
            await abort(context, refusal)
        answers: list[envelope_pb2.BatchAnswer | None] = [None] * len(envelopes)
        taken: list[tuple[int, Taken]] = []
        others: list[tuple[int, EnvelopeMethod]] = []
        for index, envelope in enumerate(envelopes):
            take = batch.takes.get(envelope.payload_type)
            method = batch.methods.get(envelope.payload_type)
            try:
                _admit(limiter, context)  # a token per envelope, as if each came alone
                if take is not None:
                    taken.append((index, take(envelope, context)))
                elif method is not None:
                    others.append((index, method))
                else:
                    raise Refusal(Code.PAYLOAD_TYPE_UNEXPECTED, "no RPC of this service takes it")
            except Refusal as refusal:
                answers[index] = _refused(refusal, context, on_refusal)
            except Exception as error:
                answers[index] = _answered(error, context, on_refusal)
        # The batch's own change is submitted first: the writer takes it before the others'.
        applied_answers, replies = await asyncio.gather(
            _applied(batch, [item for _, item in taken]),
            asyncio.gather(
                *(_one(method, envelopes[index], context, on_refusal) for index, method in others)
            ),
        )
        for (index, _), answer in zip(taken, applied_answers, strict=True):
            answers[index] = _answered(answer, context, on_refusal)
        for (index, _), reply in zip(others, replies, strict=True):
            answers[index] = reply
        complete = [answer for answer in answers if answer is not None]
        assert len(complete) == len(envelopes)
        return envelope_pb2.BatchReply(answers=complete).SerializeToString()

    return handle


def envelope_service(
    service: str,
    methods: Mapping[str, EnvelopeMethod],
    max_bytes: int = MAX_ENVELOPE_BYTES,
    on_refusal: OnRefusal | None = None,
    limiter: RateLimiter | None = None,
    batch: Batch | None = None,
) -> grpc.GenericRpcHandler[bytes, bytes]:
    """A generic handler for ``service`` (e.g. "article6.v1.Hub") serving ``methods`` by name;
    ``on_refusal`` hears every refusal with the caller's TLS identity (metrics, the log). With
    a ``limiter``, a caller (by TLS identity) over its rate is refused before anything else is
    read (1041). ``batch`` is the service's EnvelopeBatch RPC."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(_handler(method, max_bytes, on_refusal, limiter))
        for name, method in methods.items()
    }
    if batch is not None:
        handlers[batch.name] = grpc.unary_unary_rpc_method_handler(
            _batch_handler(batch, max_bytes, on_refusal, limiter)
        )
    return grpc.method_handlers_generic_handler(service, handlers)
