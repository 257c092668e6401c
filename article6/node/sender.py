"""The registry's side of the conversation with the hub: its pump, and recovery.

Every proposal, status report and leg confirmation the registry decides to send is sealed
once, when it is decided, and queued in its outbox (``article6.outbox``); the registry's pump
(``article6.pump``, the same as the hub's, with one lane: to the hub) delivers them together
(Hub.SubmitBatch, or one call each to a hub that does not serve batches) with back-off,
always under the same message id, and applies the hub's signed receipt in the same SQL
transaction that marks the message sent. Recovery asks the hub for the status of every local
transaction still waiting for its outcome (after a restart, or a notice that never came) and
applies what it learns; applying is idempotent, so nothing is done twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import grpc.aio

from article6.codes import Refusal
from article6.envelope import open_envelope, seal
from article6.headers import new_header
from article6.keys import KeyDirectory, SigningKey
from article6.model import Status
from article6.node import store
from article6.node.config import SenderConfig
from article6.node.engine import RegistryEngine
from article6.node.metrics import RegistryMetrics
from article6.node.service import Writer
from article6.outbox import OutboxMessage
from article6.pump import Attempt, GrpcTransport, Kind, Pump, Signer, Source, Transport, pause
from article6.unit import Unit
from article6.v1 import hub_pb2_grpc, reconciliation_pb2, transaction_pb2

log = logging.getLogger("registry.sender")
ANSWER = {"article6.v1.StatusAnswer": transaction_pb2.StatusAnswer}
PROPOSAL = "article6.v1.TransactionProposal"
KINDS = {  # which Hub RPC carries each payload
    PROPOSAL: Kind(transaction_pb2.TransactionProposal, "ProposeTransaction"),
    "article6.v1.StatusNotice": Kind(transaction_pb2.StatusNotice, "NotifyStatus"),
    "article6.v1.LegConfirmation": Kind(reconciliation_pb2.LegConfirmation,
                                        "SubmitReconciliation"),
}  # fmt: skip


class Sender:
    """The registry's pump, and what the hub's receipts mean to the registry (its ``Peer``)."""

    def __init__(
        self,
        registry: RegistryEngine,
        config: SenderConfig,
        writer: Writer,
        directory: KeyDirectory,
        key: SigningKey,
        channel: grpc.aio.Channel,
        metrics: RegistryMetrics | None = None,
        transport: Transport | None = None,
    ) -> None:
        """``channel``: to the hub, for recovery's queries and (unless ``transport`` says
        otherwise, as in tests) the pump's deliveries."""
        self.registry = registry
        self.config = config
        self.writer = writer
        self.directory = directory
        self.key = key
        self.hub = hub_pb2_grpc.HubStub(channel)
        self.pump = Pump(
            source=Source(registry.outbox, writer.run),
            transport=transport or GrpcTransport(lambda _: channel, "article6.v1.Hub",
                                                 "SubmitBatch"),
            peer=self, config=config, kinds=KINDS,
            signer=Signer(registry.registry_id, key, directory),
            counts=None if metrics is None else metrics.delivery, log=log,
        )  # fmt: skip

    async def run(self, stopping: asyncio.Event) -> None:
        await self.pump.run(stopping, [self.registry.hub_id])

    def attempted(self, unit: Unit, attempt: Attempt) -> None:
        return

    def delivered(
        self, unit: Unit, receipts: Sequence[tuple[OutboxMessage, transaction_pb2.Receipt]]
    ) -> None:
        for message, receipt in receipts:
            self._delivered(unit, message, receipt)

    def _delivered(
        self, unit: Unit, message: OutboxMessage, receipt: transaction_pb2.Receipt
    ) -> None:
        if message.payload_type == "article6.v1.LegConfirmation" and receipt.results:
            details = "; ".join(f"{r.code} {r.detail}" for r in receipt.results)
            log.warning("the hub found our books differ after %s: %s", message.transaction_id,
                        details, extra={"transaction_id": message.transaction_id})  # fmt: skip
        if message.payload_type != PROPOSAL or message.transaction_id is None:
            return
        local = store.get_transaction(unit.connection, message.transaction_id)
        assert local is not None, message.transaction_id
        transaction = transaction_pb2.Transaction.FromString(local.body)
        results = [(r.code, r.detail) for r in receipt.results]
        # No status: refused before the hub recorded anything (a reused id); terminate too.
        status = Status(receipt.status) if receipt.status else Status.TERMINATED
        self.registry.settle(unit, transaction, status, results)

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
            await pause(stopping, interval)

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
            lambda unit: self.registry.settle(unit, answer.transaction, status, results)
        )
        log.info("recovered %s: %s", transaction_id, status.name,
                 extra={"transaction_id": transaction_id})  # fmt: skip


def _unsettled(unit: Unit, older_than: datetime) -> list[store.LocalTransaction]:
    return store.unsettled(unit.connection, older_than)
