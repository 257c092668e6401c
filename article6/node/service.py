"""``article6.v1.Registry`` as the reference registry serves it.

Only the hub delivers. Each delivery is authenticated, then applied exactly once in one SQL
transaction with its inbox record: a repeated delivery gets the stored receipt, byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy import Connection, Engine

from article6.codes import Code, Refusal
from article6.envelope import Opened, open_envelope, payload_sha256, seal
from article6.headers import check_fresh, new_header
from article6.keys import KeyDirectory, SigningKey
from article6.model import Status
from article6.node import store
from article6.node.engine import RegistryEngine
from article6.service import Context, envelope_service
from article6.sql import remember, replayed
from article6.tls import peer_identity
from article6.v1 import envelope_pb2, transaction_pb2

T = TypeVar("T")
DELIVERABLE: dict[str, type[Message]] = {
    "article6.v1.AcquisitionRequest": transaction_pb2.AcquisitionRequest,
    "article6.v1.StatusNotice": transaction_pb2.StatusNotice,
}


class Writer:
    """One thread that runs every SQL transaction of the serving process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="db-writer")

    def now(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as connection:
            return work(connection)

    async def run(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.now, work)

    def close(self) -> None:
        self._thread.shutdown(wait=True)


class RegistryService:
    def __init__(
        self,
        registry: RegistryEngine,
        directory: KeyDirectory,
        key: SigningKey,
        writer: Writer,
    ) -> None:
        self.registry = registry
        self.directory = directory
        self.key = key
        self.writer = writer

    def handler(
        self, on_refusal: Callable[[Code], None] | None = None
    ) -> grpc.GenericRpcHandler[bytes, bytes]:
        return envelope_service(
            "article6.v1.Registry", {"Deliver": self.deliver}, on_refusal=on_refusal
        )

    async def deliver(
        self, envelope: envelope_pb2.Envelope, context: Context
    ) -> envelope_pb2.Envelope:
        opened = open_envelope(
            envelope,
            accepted=DELIVERABLE,
            directory=self.directory,
            recipient=self.registry.registry_id,
            peer_identity=peer_identity(context) or "",
            now=datetime.now(UTC),
        )
        if opened.signer != self.registry.hub_id:
            raise Refusal(Code.SENDER_UNKNOWN, "only the hub delivers to a registry")
        response = await self.writer.run(lambda c: self._once(c, opened))
        return envelope_pb2.Envelope.FromString(response)

    def _once(self, connection: Connection, opened: Opened) -> bytes:
        digest = payload_sha256(opened.envelope)
        message_id = opened.header.message_id
        stored = replayed(connection, store.inbox, opened.signer, message_id, digest)
        if stored is not None:
            return stored
        now = datetime.now(UTC)
        check_fresh(opened.header, now)
        receipt = self._apply(connection, opened.payload)
        receipt.in_reply_to = opened.header.message_id
        receipt.request_payload_sha256 = digest
        receipt.header.CopyFrom(new_header(self.registry.registry_id, opened.signer, now))
        response = seal(receipt, [self.key]).SerializeToString()
        remember(connection, store.inbox, opened.signer, message_id, digest, response, now)
        return response

    def _apply(self, connection: Connection, payload: Message) -> transaction_pb2.Receipt:
        if isinstance(payload, transaction_pb2.AcquisitionRequest):
            transaction = payload.transaction
            decision, results = self.registry.acquisition(connection, transaction)
        else:
            assert isinstance(payload, transaction_pb2.StatusNotice)
            transaction = payload.transaction
            if payload.status not in _STATUSES:
                raise Refusal(Code.STATUS_TRANSITION_INVALID, f"status {payload.status}")
            decision = Status(payload.status)
            results = []
            codes = [(r.code, r.detail) for r in payload.results]
            self.registry.settle(connection, transaction, decision, codes)
        receipt = transaction_pb2.Receipt(
            accepted=True,
            transaction_id=transaction.transaction_id,
            status=transaction_pb2.TransactionStatus.ValueType(decision.value),
        )
        for code, detail in results:
            receipt.results.add(code=code.value, detail=detail)
        return receipt


_STATUSES = frozenset(status.value for status in Status)
