"""``article6.v1.Registry`` as the reference registry serves it.

Only the hub delivers. Each delivery is authenticated, then applied exactly once in one SQL
transaction with its inbox record (a batch's deliveries in one unit of work,
``article6.inbox.exactly_once_all``): a repeated delivery gets the stored receipt, byte for
byte.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy import Engine

from article6.codes import Code, Refusal
from article6.envelope import Opened, open_envelope, seal
from article6.group_commit import GroupWriter, Plain
from article6.headers import check_fresh, new_header
from article6.inbox import Answer, Taken, exactly_once_all
from article6.keys import KeyDirectory, SigningKey
from article6.limits import (
    KEPT_SNAPSHOTS,
    MAX_LEAVES_PER_QUERY,
    MAX_PARENTS_PER_QUERY,
    RUN_MAX_SECONDS,
)
from article6.model import Status
from article6.node import store
from article6.node.engine import RegistryEngine
from article6.reconciliation import Tree, check_shape
from article6.refusals import OnRefusal
from article6.service import Batch, Context, envelope_service, recorded
from article6.snapshot import Snapshot
from article6.tls import peer_identity
from article6.unit import Unit
from article6.v1 import envelope_pb2, reconciliation_pb2, transaction_pb2, units_pb2
from article6.wire import held_block_message, node_message, run_status_words

T = TypeVar("T")
log = logging.getLogger("registry")
COMPLETED = 5  # article6.v1.RECONCILIATION_STATUS_COMPLETED
DELIVERABLE: dict[str, type[Message]] = {
    "article6.v1.AcquisitionRequest": transaction_pb2.AcquisitionRequest,
    "article6.v1.StatusNotice": transaction_pb2.StatusNotice,
    "article6.v1.ReconciliationRequest": reconciliation_pb2.ReconciliationRequest,
    "article6.v1.ReconciliationResult": reconciliation_pb2.ReconciliationResult,
}
TOTALS = {"article6.v1.SnapshotTotalsRequest": reconciliation_pb2.SnapshotTotalsRequest}
NODES = {"article6.v1.HashTreeRequest": reconciliation_pb2.HashTreeRequest}
LISTING = {"article6.v1.BlockListRequest": reconciliation_pb2.BlockListRequest}


class Writer:
    """One thread that runs every SQL transaction of the serving process, committing the
    changes that wait for it together (``article6.group_commit``), each given its unit of
    work (``article6.unit.Unit``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._thread = GroupWriter(Plain(engine))

    async def run(self, work: Callable[[Unit], T]) -> T:
        """Apply ``work``; returns once its commit is durable."""
        result: T = await self._thread.apply(work)
        return result

    def close(self) -> None:
        self._thread.close()


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
        # The snapshots of the last runs the hub opened, by run id: the books as they were
        # when the run's request was taken (the hub held this registry's proposals until
        # then), and the tree being built from them.
        self.snapshots: dict[str, RunSnapshot] = {}

    def handler(self, on_refusal: OnRefusal | None = None) -> grpc.GenericRpcHandler[bytes, bytes]:
        methods = {
            "Deliver": recorded(self._take, self._apply_all),
            "GetSnapshotTotals": self.get_snapshot_totals,
            "GetHashTreeNodes": self.get_hash_tree_nodes,
            "ListSnapshotBlocks": self.list_snapshot_blocks,
        }
        batch = Batch("DeliverBatch", dict.fromkeys(DELIVERABLE, self._take), self._apply_all)
        return envelope_service("article6.v1.Registry", methods, on_refusal=on_refusal, batch=batch)

    def _from_hub(
        self,
        envelope: envelope_pb2.Envelope,
        context: Context,
        accepted: Mapping[str, type[Message]],
    ) -> Opened:
        opened = open_envelope(
            envelope,
            accepted=accepted,
            directory=self.directory,
            recipient=self.registry.registry_id,
            peer_identity=peer_identity(context) or "",
            now=datetime.now(UTC),
        )
        if opened.signer != self.registry.hub_id:
            raise Refusal(Code.SENDER_UNKNOWN, "only the hub delivers to a registry")
        return opened

    def _take(self, envelope: envelope_pb2.Envelope, context: Context) -> Taken:
        opened = self._from_hub(envelope, context, DELIVERABLE)
        return opened, partial(self._respond, opened)

    async def _apply_all(self, taken: Sequence[Taken]) -> list[Answer]:
        """Apply deliveries exactly once in one unit of work on the writer. A reconciliation
        request's snapshot is pinned after its commit and before its receipt leaves: the hub
        lets this registry's proposals flow again once it has the receipt."""
        answers: list[Answer] = await self.writer.run(
            lambda unit: exactly_once_all(unit, store.inbox, taken)
        )
        for (opened, _), answer in zip(taken, answers, strict=True):
            request = opened.payload
            if isinstance(request, reconciliation_pb2.ReconciliationRequest) and isinstance(
                answer, bytes
            ):
                await asyncio.to_thread(self._snapshot, request)
        return answers

    def _respond(self, opened: Opened, unit: Unit, now: datetime) -> bytes:
        receipt = self._apply(unit, opened.payload)
        receipt.in_reply_to = opened.header.message_id
        receipt.request_payload_sha256 = opened.digest
        receipt.header.CopyFrom(new_header(self.registry.registry_id, opened.signer, now))
        return seal(receipt, [self.key]).SerializeToString()

    def _apply(self, unit: Unit, payload: Message) -> transaction_pb2.Receipt:
        if isinstance(payload, reconciliation_pb2.ReconciliationRequest):
            check_shape(payload.fanout, payload.depth)
            return transaction_pb2.Receipt(accepted=True)
        if isinstance(payload, reconciliation_pb2.ReconciliationResult):
            self._drop(payload.run_id)
            level = logging.INFO if payload.status == COMPLETED else logging.WARNING
            log.log(level, "reconciliation %s ended: %s, %d blocks differ", payload.run_id,
                    run_status_words(payload.status),
                    len(payload.hub_blocks) + len(payload.registry_blocks))  # fmt: skip
            return transaction_pb2.Receipt(accepted=True)
        confirmation = None
        if isinstance(payload, transaction_pb2.AcquisitionRequest):
            transaction = payload.transaction
            decision, results = self.registry.acquisition(unit.connection, transaction)
            # A refusal is accepted=false with status 6 REJECTED and its codes.
            accepted = decision is Status.ACCEPTED
        else:
            assert isinstance(payload, transaction_pb2.StatusNotice)
            transaction = payload.transaction
            if payload.status not in _STATUSES:
                raise Refusal(Code.STATUS_TRANSITION_INVALID, f"status {payload.status}")
            decision = Status(payload.status)
            accepted = True
            results = []
            codes = [(r.code, r.detail) for r in payload.results]
            confirmation = self.registry.settle(
                unit, transaction, decision, codes, payload.confirm_in_receipt
            )
        receipt = transaction_pb2.Receipt(
            accepted=accepted,
            transaction_id=transaction.transaction_id,
            status=transaction_pb2.TransactionStatus.ValueType(decision.value),
            leg_confirmation=confirmation,
        )
        for code, detail in results:
            receipt.results.add(code=code.value, detail=detail)
        return receipt

    # --- reconciliation ------------------------------------------------------------------

    def _snapshot(self, request: reconciliation_pb2.ReconciliationRequest) -> None:
        """Pin the books and start building the run's tree from them; drop the snapshots
        beyond the last few and those older than a run may last."""
        snapshot = Snapshot(self.writer.engine, store.holdings)
        tree = snapshot.submit(partial(store.holdings_tree, fanout=request.fanout,
                                       depth=request.depth))  # fmt: skip
        self._drop(request.run_id)
        self.snapshots[request.run_id] = RunSnapshot(snapshot, tree, time.monotonic())
        expired = time.monotonic() - RUN_MAX_SECONDS
        for run_id, kept in list(self.snapshots.items()):
            if len(self.snapshots) > KEPT_SNAPSHOTS or kept.taken < expired:
                self._drop(run_id)

    def _drop(self, run_id: str) -> None:
        kept = self.snapshots.pop(run_id, None)
        if kept is not None:
            kept.snapshot.close()

    async def _run(self, opened: Opened) -> tuple[RunSnapshot, Tree]:
        """The run a query is about, and its tree once built."""
        check_fresh(opened.header, datetime.now(UTC))
        run_id = getattr(opened.payload, "run_id")  # noqa: B009 (field of each query)
        kept = self.snapshots.get(run_id)
        if kept is None or kept.snapshot.closed:
            raise Refusal(Code.RECONCILIATION_RUN_UNKNOWN, run_id[:64])
        return kept, await asyncio.wrap_future(kept.tree)

    def _answer(self, opened: Opened, answer: Message) -> envelope_pb2.Envelope:
        header = new_header(self.registry.registry_id, opened.signer, datetime.now(UTC))
        getattr(answer, "header").CopyFrom(header)  # noqa: B009 (field of each answer)
        return seal(answer, [self.key])

    async def get_snapshot_totals(
        self, envelope: envelope_pb2.Envelope, context: Context
    ) -> envelope_pb2.Envelope:
        opened = self._from_hub(envelope, context, TOTALS)
        _, tree = await self._run(opened)
        request = opened.payload
        assert isinstance(request, reconciliation_pb2.SnapshotTotalsRequest)
        answer = reconciliation_pb2.SnapshotTotals(
            run_id=request.run_id, root=node_message(tree.root)
        )
        for (kind, vintage, approach), (units, count) in sorted(tree.totals.items()):
            answer.rows.add(
                unit_kind=units_pb2.UnitKind.ValueType(kind), vintage=vintage,
                cooperative_approach=approach, unit_count=units, block_count=count,
            )  # fmt: skip
        return self._answer(opened, answer)

    async def get_hash_tree_nodes(
        self, envelope: envelope_pb2.Envelope, context: Context
    ) -> envelope_pb2.Envelope:
        opened = self._from_hub(envelope, context, NODES)
        _, tree = await self._run(opened)
        request = opened.payload
        assert isinstance(request, reconciliation_pb2.HashTreeRequest)
        if len(request.parents) > MAX_PARENTS_PER_QUERY:
            raise Refusal(Code.HASH_TREE_NODE_INVALID, f"more than {MAX_PARENTS_PER_QUERY} parents")
        answer = reconciliation_pb2.HashTreeNodes(run_id=request.run_id)
        for parent in request.parents:
            answer.nodes.extend(node_message(n) for n in tree.children(parent.depth, parent.index))
        return self._answer(opened, answer)

    async def list_snapshot_blocks(
        self, envelope: envelope_pb2.Envelope, context: Context
    ) -> envelope_pb2.Envelope:
        opened = self._from_hub(envelope, context, LISTING)
        kept, tree = await self._run(opened)
        request = opened.payload
        assert isinstance(request, reconciliation_pb2.BlockListRequest)
        if len(request.leaves) > MAX_LEAVES_PER_QUERY:
            raise Refusal(Code.HASH_TREE_NODE_INVALID, f"more than {MAX_LEAVES_PER_QUERY} leaves")
        for leaf in request.leaves:
            if leaf.depth != tree.depth:
                detail = f"({leaf.depth}, {leaf.index}) is not a leaf"
                raise Refusal(Code.HASH_TREE_NODE_INVALID, detail)
        places = tree.places(leaf.index for leaf in request.leaves)
        registry = self.registry.registry_id
        blocks = await kept.snapshot.read(partial(store.holdings_at, registry=registry,
                                                  places=places))  # fmt: skip
        answer = reconciliation_pb2.BlockListing(run_id=request.run_id)
        answer.blocks.extend(held_block_message(b) for b in blocks)
        return self._answer(opened, answer)


@dataclass(frozen=True)
class RunSnapshot:
    """A run's snapshot of the books, the tree being built from it, and when it was taken."""

    snapshot: Snapshot
    tree: Future[Tree]
    taken: float  # time.monotonic()


_STATUSES = frozenset(status.value for status in Status)
