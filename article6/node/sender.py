"""The registry's side of the conversation with the hub: its outbox, and recovery.

The outbox holds every proposal and status report the registry has decided to send, sealed
once when it was decided; the sender delivers the due ones together (Hub.SubmitBatch, or one
call each to a hub that does not serve batches) with back-off, always under the same message
id, and applies the hub's signed receipt in the same SQL transaction that marks the message
sent. Recovery asks the hub for the status of every local transaction still
waiting for its outcome (after a restart, or a notice that never came) and applies what it
learns; applying is idempotent, so nothing is done twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import grpc.aio
from google.protobuf.message import Message
from sqlalchemy import Connection

from article6.batch import BatchClient, answered, receipt_to
from article6.breaker import Breaker
from article6.codes import Code, Refusal
from article6.envelope import open_envelope, reseal, seal
from article6.headers import new_header
from article6.keys import KeyDirectory, SigningKey
from article6.limits import MAX_OUTBOX_MESSAGES_PER_SEND
from article6.model import Status
from article6.node import store
from article6.node.config import SenderConfig
from article6.node.engine import RegistryEngine
from article6.node.metrics import RegistryMetrics
from article6.node.service import Writer
from article6.refusals import RefusalLog
from article6.retry import RetryPolicy
from article6.status import Failure
from article6.unit import Unit
from article6.v1 import envelope_pb2, hub_pb2_grpc, reconciliation_pb2, transaction_pb2

log = logging.getLogger("registry.sender")
ANSWER = {"article6.v1.StatusAnswer": transaction_pb2.StatusAnswer}
PROPOSAL = "article6.v1.TransactionProposal"
PAYLOADS: dict[str, type[Message]] = {
    PROPOSAL: transaction_pb2.TransactionProposal,
    "article6.v1.StatusNotice": transaction_pb2.StatusNotice,
    "article6.v1.LegConfirmation": reconciliation_pb2.LegConfirmation,
}
RPCS = {  # which Hub RPC carries each payload
    PROPOSAL: "ProposeTransaction",
    "article6.v1.StatusNotice": "NotifyStatus",
    "article6.v1.LegConfirmation": "SubmitReconciliation",
}


class Sender:
    def __init__(
        self,
        registry: RegistryEngine,
        config: SenderConfig,
        writer: Writer,
        directory: KeyDirectory,
        key: SigningKey,
        channel: grpc.aio.Channel,
        metrics: RegistryMetrics | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.writer = writer
        self.directory = directory
        self.key = key
        self.hub = hub_pb2_grpc.HubStub(channel)
        self.client = BatchClient(channel, "article6.v1.Hub", "SubmitBatch")
        self.metrics = metrics
        self.hub_watch = Breaker()  # only to say when the hub stops answering, and is back
        self.refused_by_hub = RefusalLog(log, inbound=False)
        self.refused_receipts = RefusalLog(log, inbound=True)
        self.retry = RetryPolicy(
            config.backoff_initial_seconds, config.backoff_max_seconds,
            config.give_up_after_seconds, config.max_attempts,
        )  # fmt: skip

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                sent = await self._send_batch()
            except Exception:  # the loop must outlive any one failure
                log.exception("sending failed; trying again shortly")
                sent = False
                await _pause(stopping, 1.0)
            if not sent:
                await _pause(stopping, self.config.poll_interval_seconds)

    async def _send_batch(self) -> bool:
        """Send the due messages in batches, then record every receipt in one commit."""
        due = await self.writer.run(
            lambda unit: store.due_outbox(unit.connection, MAX_OUTBOX_MESSAGES_PER_SEND)
        )
        if not due:
            return False
        items = [
            (RPCS[entry.payload_type], envelope_pb2.Envelope.FromString(entry.envelope))
            for entry in due
        ]
        results = await self.client.send(items, self.config.rpc_timeout_seconds)
        warning = self.hub_watch.record(answered(results), str(results[0]), self.registry.hub_id)
        if warning:
            log.warning(warning, extra={"peer": self.registry.hub_id})
        # Receipts are verified here, on the event loop, so that the writer (which every
        # change waits for) spends no time on signatures.
        attempts = [
            (entry, result if isinstance(result, Failure) else self._receipt(result, entry))
            for entry, result in zip(due, results, strict=True)
        ]
        await self.writer.run(partial(self._record_all, attempts=attempts))
        return True

    def _record_all(
        self,
        unit: Unit,
        attempts: list[tuple[store.Outgoing, transaction_pb2.Receipt | Refusal | Failure]],
    ) -> None:
        for entry, result in attempts:
            self._count(result)
            if isinstance(result, Failure):
                if result.refusal is not None:
                    self.refused_by_hub(result.refusal, self.registry.hub_id)
                self._failed(unit.connection, entry, result)
            elif isinstance(result, Refusal):
                self.refused_receipts(result, self.registry.hub_id)
                self._retry(unit.connection, entry, f"bad receipt: {result}")
            else:
                self._received(unit.connection, entry, result)

    def _count(self, result: transaction_pb2.Receipt | Refusal | Failure) -> None:
        if self.metrics is None:
            return
        hub = self.registry.hub_id
        self.metrics.delivery_attempts.labels(hub).inc()
        if isinstance(result, Failure):
            self.metrics.delivery_failures.labels(hub, result.reason).inc()

    def _receipt(
        self, reply: envelope_pb2.Envelope, entry: store.Outgoing
    ) -> transaction_pb2.Receipt | Refusal:
        registry = self.registry
        return receipt_to(entry.message_id, reply, directory=self.directory,
                          recipient=registry.registry_id, peer=registry.hub_id)  # fmt: skip

    def _received(
        self, connection: Connection, entry: store.Outgoing, receipt: transaction_pb2.Receipt
    ) -> None:
        store.outbox_sent(connection, entry.id)
        if entry.payload_type == "article6.v1.LegConfirmation" and receipt.results:
            details = "; ".join(f"{r.code} {r.detail}" for r in receipt.results)
            log.warning("the hub found our books differ after %s: %s", entry.transaction_id,
                        details, extra={"transaction_id": entry.transaction_id})  # fmt: skip
        if entry.payload_type != PROPOSAL or entry.transaction_id is None:
            return
        local = store.get_transaction(connection, entry.transaction_id)
        assert local is not None, entry.transaction_id
        message = transaction_pb2.Transaction.FromString(local.body)
        results = [(r.code, r.detail) for r in receipt.results]
        # No status: refused before the hub recorded anything (a reused id); terminate too.
        status = Status(receipt.status) if receipt.status else Status.TERMINATED
        self.registry.settle(connection, message, status, results)

    def _failed(self, connection: Connection, entry: store.Outgoing, failure: Failure) -> None:
        if failure.refusal is not None and failure.refusal.code is Code.CLOCK_SKEW:
            payload_class = PAYLOADS[entry.payload_type]
            envelope = envelope_pb2.Envelope.FromString(entry.envelope)
            fresh = reseal(envelope, payload_class, [self.key], datetime.now(UTC))
            store.outbox_retry(
                connection, entry, str(failure), datetime.now(UTC), fresh.SerializeToString()
            )
            return
        self._retry(connection, entry, str(failure))

    def _retry(self, connection: Connection, entry: store.Outgoing, reason: str) -> None:
        now = datetime.now(UTC)
        retry_at = self.retry.next_attempt(
            entry.attempts + 1, entry.created_at.replace(tzinfo=UTC), now
        )
        if retry_at is None:
            log.warning("dead letter to the hub after %d attempts: %s", entry.attempts + 1,
                        reason, extra={"message_id": entry.message_id,
                                       "transaction_id": entry.transaction_id})  # fmt: skip
        store.outbox_retry(connection, entry, reason, retry_at)

    # --- recovery ------------------------------------------------------------------------

    async def recover(self, stopping: asyncio.Event) -> None:
        """Look up transactions that have waited for the hub longer than
        ``recovery_after_seconds``, now and then every ``recovery_interval_seconds``."""
        interval = self.config.recovery_interval_seconds
        after = self.config.recovery_after_seconds
        asked: dict[str, float] = {}  # when each was last looked up (monotonic)
        while not stopping.is_set():
            older_than = store.utcnow() - timedelta(seconds=after)
            try:
                waiting = await self.writer.run(partial(_unsettled, older_than=older_than))
                # Each is asked about at most once per ``after``: under a backlog, asking the
                # busy hub again every sweep would only add to what it has to work through.
                asked = {local.transaction_id: asked.get(local.transaction_id, -after)
                         for local in waiting}  # fmt: skip
                for transaction_id, last in asked.items():
                    if time.monotonic() - last < after:
                        continue
                    asked[transaction_id] = time.monotonic()
                    with contextlib.suppress(grpc.aio.AioRpcError, Refusal):
                        await self._look_up(transaction_id)
            except Exception:  # the loop must outlive any one failure
                log.exception("recovery failed; trying again shortly")
            await _pause(stopping, interval)

    async def _look_up(self, transaction_id: str) -> None:
        query = transaction_pb2.StatusQuery(
            header=new_header(self.registry.registry_id, self.registry.hub_id, datetime.now(UTC)),
            transaction_id=transaction_id,
        )
        reply = await self.hub.GetTransactionStatus(
            seal(query, [self.key]), timeout=self.config.rpc_timeout_seconds
        )
        answer = open_envelope(
            reply,
            accepted=ANSWER,
            directory=self.directory,
            recipient=self.registry.registry_id,
            peer_identity=self.registry.hub_id,
            now=datetime.now(UTC),
        ).payload
        assert isinstance(answer, transaction_pb2.StatusAnswer)
        if not answer.found or not Status(answer.status).final:
            return
        results = [(r.code, r.detail) for r in answer.results]
        status = Status(answer.status)
        await self.writer.run(
            lambda unit: self.registry.settle(unit.connection, answer.transaction, status, results)
        )
        log.info("recovered %s: %s", transaction_id, status.name,
                 extra={"transaction_id": transaction_id})  # fmt: skip


def _unsettled(unit: Unit, older_than: datetime) -> list[store.LocalTransaction]:
    return store.unsettled(unit.connection, older_than)


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
