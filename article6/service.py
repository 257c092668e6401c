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
from collections.abc import Awaitable, Callable, Mapping

import grpc
import grpc.aio

from article6.codes import Code, Refusal
from article6.envelope import read_envelope, read_message
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


def _batch_handler(
    routes: Mapping[str, EnvelopeMethod],
    max_bytes: int,
    on_refusal: OnRefusal | None,
    limiter: RateLimiter | None,
) -> Callable[[bytes, Context], Awaitable[bytes]]:
    """Each envelope of a batch goes to the method its payload_type names and is answered as
    that unary RPC would answer it. They run concurrently, so their changes share commits."""

    async def one(envelope: envelope_pb2.Envelope, context: Context) -> envelope_pb2.BatchAnswer:
        method = routes.get(envelope.payload_type)
        try:
            _admit(limiter, context)  # a token per envelope, as if each came alone
            if method is None:
                raise Refusal(Code.PAYLOAD_TYPE_UNEXPECTED, "no RPC of this service takes it")
        except Refusal as refusal:
            if on_refusal is not None:
                on_refusal(refusal, peer_identity(context))
            return envelope_pb2.BatchAnswer(status=status_details(refusal))
        answer = await _answer(method, envelope, context, on_refusal)
        if isinstance(answer, Refusal):
            return envelope_pb2.BatchAnswer(status=status_details(answer))
        if answer is None:
            return envelope_pb2.BatchAnswer(status=fault_details(INTERNAL_DETAIL))
        return envelope_pb2.BatchAnswer(reply=answer)

    async def handle(raw: bytes, context: Context) -> bytes:
        try:
            _admit(limiter, context, take=False)  # no parsing for a caller with nothing left
            batch = read_batch(raw, max_bytes)
        except Refusal as refusal:
            if on_refusal is not None:
                on_refusal(refusal, peer_identity(context))
            await abort(context, refusal)
        answers = await asyncio.gather(*(one(e, context) for e in batch.envelopes))
        return envelope_pb2.BatchReply(answers=answers).SerializeToString()

    return handle


def envelope_service(
    service: str,
    methods: Mapping[str, EnvelopeMethod],
    max_bytes: int = MAX_ENVELOPE_BYTES,
    on_refusal: OnRefusal | None = None,
    limiter: RateLimiter | None = None,
    batch: tuple[str, Mapping[str, EnvelopeMethod]] | None = None,
) -> grpc.GenericRpcHandler[bytes, bytes]:
    """A generic handler for ``service`` (e.g. "article6.v1.Hub") serving ``methods`` by name;
    ``on_refusal`` hears every refusal with the caller's TLS identity (metrics, the log). With
    a ``limiter``, a caller (by TLS identity) over its rate is refused before anything else is
    read (1041). ``batch`` names the service's EnvelopeBatch RPC and routes its envelopes by
    payload_type."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(_handler(method, max_bytes, on_refusal, limiter))
        for name, method in methods.items()
    }
    if batch is not None:
        name, routes = batch
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            _batch_handler(routes, max_bytes, on_refusal, limiter)
        )
    return grpc.method_handlers_generic_handler(service, handlers)
