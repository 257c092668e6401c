"""Serving Envelope RPCs: raw bytes in, refusals out as numbered gRPC statuses.

The hub and every registry serve services whose RPCs take and return an ``Envelope``. The
handlers registered here receive the raw request bytes, so malformed or oversized input is
refused with its own code (ENVELOPE_MALFORMED, MESSAGE_TOO_LARGE) rather than a generic
deserialization error, and any ``Refusal`` raised by a method ends the RPC through
``article6.status.abort``. Anything else is a fault of ours: it is logged here and the caller
gets INTERNAL with a fixed message, never the exception's text. gRPC's own receive limit
should sit above ``max_bytes`` (``grpc_message_options``), so moderately oversized envelopes
still get the numbered code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import grpc
import grpc.aio

from article6.codes import Code, Refusal
from article6.envelope import MAX_ENVELOPE_BYTES, read_envelope
from article6.ratelimit import RateLimiter
from article6.status import abort
from article6.tls import peer_identity
from article6.v1 import envelope_pb2

log = logging.getLogger("article6.service")
Context = grpc.aio.ServicerContext[bytes, bytes]
EnvelopeMethod = Callable[[envelope_pb2.Envelope, Context], Awaitable[envelope_pb2.Envelope]]

GRPC_LIMIT_MARGIN_BYTES = 64 * 1024


def grpc_message_options(max_bytes: int = MAX_ENVELOPE_BYTES) -> list[tuple[str, int]]:
    """Server or channel options whose gRPC message limits sit just above ``max_bytes``."""
    limit = max_bytes + GRPC_LIMIT_MARGIN_BYTES
    return [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]


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


def _handler(
    method: EnvelopeMethod,
    max_bytes: int,
    on_refusal: Callable[[Code], None] | None,
    limiter: RateLimiter | None,
) -> Callable[[bytes, Context], Awaitable[bytes]]:
    async def handle(raw: bytes, context: Context) -> bytes:
        try:
            if limiter is not None and not limiter.admit(
                peer_identity(context) or "", time.monotonic()
            ):
                raise Refusal(Code.RATE_LIMITED, "too many requests; retry with back-off")
            envelope = read_envelope(raw, max_bytes)
            reply = await method(envelope, context)
        except Refusal as refusal:
            if on_refusal is not None:
                on_refusal(refusal.code)
            await abort(context, refusal)
        except grpc.aio.AbortError:  # a method that ended the call itself
            raise
        except Exception:
            # A fault of ours, not the peer's: its SQL transaction rolled back, so nothing was
            # recorded and a retry is safe. The peer learns no more than that; the traceback
            # (which may quote SQL and values) stays in our log.
            log.exception("unexpected failure handling a %s call", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_DETAIL)
        return reply.SerializeToString()

    return handle


def envelope_service(
    service: str,
    methods: Mapping[str, EnvelopeMethod],
    max_bytes: int = MAX_ENVELOPE_BYTES,
    on_refusal: Callable[[Code], None] | None = None,
    limiter: RateLimiter | None = None,
) -> grpc.GenericRpcHandler[bytes, bytes]:
    """A generic handler for ``service`` (e.g. "article6.v1.Hub") serving ``methods`` by name;
    ``on_refusal`` hears the code of every refusal (for metrics). With a ``limiter``, a caller
    (by TLS identity) over its rate is refused before anything else is read (1041)."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(_handler(method, max_bytes, on_refusal, limiter))
        for name, method in methods.items()
    }
    return grpc.method_handlers_generic_handler(service, handlers)
