"""Sending many envelopes to one peer: ``EnvelopeBatch`` calls, unary calls where it can't.

The hub's deliveries (``Registry.DeliverBatch``) and a registry's messages to the hub
(``Hub.SubmitBatch``) go out in batches: one RPC, one TLS record stream and one event-loop
turn carry up to ``MAX_BATCH_ENVELOPES`` envelopes, each still signed, recorded and answered
on its own (docs/PROTOCOL.md, "Batches"). Whatever is due goes in a batch, even one envelope
(so a peer serving the batch RPC gets every message through it, as the spec says), except an
envelope over ``ALONE_ENVELOPE_BYTES``, which goes alone through its unary RPC. A peer that answers
UNIMPLEMENTED is sent unary calls, and asked again after ``RETRY_BATCH_AFTER_SECONDS`` in case
it was upgraded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from article6.codes import Code, Refusal
from article6.envelope import open_envelope
from article6.keys import KeyDirectory
from article6.limits import (
    ALONE_ENVELOPE_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_ENVELOPES,
    RETRY_BATCH_AFTER_SECONDS,
)
from article6.status import Failure
from article6.v1 import envelope_pb2, transaction_pb2

Result = envelope_pb2.Envelope | Failure
RECEIPT = {"article6.v1.Receipt": transaction_pb2.Receipt}


class BatchClient:
    """Calls to one peer's ``service`` (e.g. "article6.v1.Registry"), batched through its
    ``batch_rpc`` (e.g. "DeliverBatch")."""

    def __init__(self, channel: grpc.aio.Channel, service: str, batch_rpc: str) -> None:
        self.channel = channel
        self.service = service
        self._batch = channel.unary_unary(
            f"/{service}/{batch_rpc}",
            envelope_pb2.EnvelopeBatch.SerializeToString,
            envelope_pb2.BatchReply.FromString,
        )
        self._unary_until = 0.0  # monotonic time until which the peer gets unary calls only
        self._unary_calls: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}

    async def send(
        self, items: Sequence[tuple[str, envelope_pb2.Envelope]], timeout: float
    ) -> list[Result]:
        """Send each (unary RPC name, envelope); the reply or failure of each, in order."""
        chunks: list[list[tuple[str, envelope_pb2.Envelope]]] = []
        size = 0
        for item in items:
            item_size = item[1].ByteSize()
            if (
                not chunks
                or len(chunks[-1]) >= MAX_BATCH_ENVELOPES
                or size + item_size > MAX_BATCH_BYTES
            ):
                chunks.append([])
                size = 0
            chunks[-1].append(item)
            size += item_size
        sent = await asyncio.gather(*(self._chunk(chunk, timeout) for chunk in chunks))
        return [result for chunk in sent for result in chunk]

    async def _chunk(
        self, chunk: list[tuple[str, envelope_pb2.Envelope]], timeout: float
    ) -> list[Result]:
        alone = any(e.ByteSize() > ALONE_ENVELOPE_BYTES for _, e in chunk)
        if alone or time.monotonic() < self._unary_until:
            return list(await asyncio.gather(*(self._unary(n, e, timeout) for n, e in chunk)))
        batch = envelope_pb2.EnvelopeBatch(envelopes=[envelope for _, envelope in chunk])
        try:
            reply = await self._batch(batch, timeout=timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.UNIMPLEMENTED:
                return [Failure.of_error(error)] * len(chunk)
            self._unary_until = time.monotonic() + RETRY_BATCH_AFTER_SECONDS
            return await self._chunk(chunk, timeout)
        if len(reply.answers) != len(chunk):
            detail = f"{len(reply.answers)} answers to {len(chunk)} envelopes"
            return [Failure(grpc.StatusCode.UNKNOWN, detail, None)] * len(chunk)
        return [_result(answer) for answer in reply.answers]

    async def _unary(self, rpc: str, envelope: envelope_pb2.Envelope, timeout: float) -> Result:
        call = self._unary_calls.get(rpc)
        if call is None:  # made once per RPC (to a peer without batches, every message)
            call = self.channel.unary_unary(
                f"/{self.service}/{rpc}",
                envelope_pb2.Envelope.SerializeToString,
                envelope_pb2.Envelope.FromString,
            )
            self._unary_calls[rpc] = call
        try:
            reply: envelope_pb2.Envelope = await call(
                envelope, timeout=timeout, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as error:
            return Failure.of_error(error)
        return reply


def answered(results: Sequence[Result]) -> bool:
    """Whether the peer answered any of them (a refusal is an answer; silence is not)."""
    return any(not isinstance(r, Failure) or not r.unanswered for r in results)


def receipt_to(
    message_id: str,
    reply: envelope_pb2.Envelope,
    *,
    directory: KeyDirectory,
    recipient: str,
    peer: str,
) -> transaction_pb2.Receipt | Refusal:
    """The peer's signed receipt to the message ``message_id``, or why ``reply`` is not one.
    A sender calls it as the reply arrives, on the event loop, so that its writer (which
    every change waits for) spends no time on signatures."""
    try:
        opened = open_envelope(
            reply,
            accepted=RECEIPT,
            directory=directory,
            recipient=recipient,
            peer_identity=peer,  # the TLS handshake verified the server
            now=datetime.now(UTC),
        )
    except Refusal as refusal:
        return refusal
    receipt = opened.payload
    assert isinstance(receipt, transaction_pb2.Receipt)
    if receipt.in_reply_to != message_id:
        return Refusal(Code.RECIPIENT_WRONG, "receipt answers another message")
    return receipt


def _result(answer: envelope_pb2.BatchAnswer) -> Result:
    """One answer of a peer's BatchReply, which may be as hostile as anything else it sends."""
    kind = answer.WhichOneof("answer")
    if kind == "reply":
        return answer.reply
    try:
        failure = Failure.of_status(answer.status) if kind == "status" else None
    except DecodeError:
        failure = None
    if failure is None or failure.status is grpc.StatusCode.OK:
        return Failure(grpc.StatusCode.UNKNOWN, "a batch answer with neither reply nor error", None)
    return failure
