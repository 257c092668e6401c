"""Reconciliation runs: the hub compares a registry's books with its ledger.

A run, after the Kyoto ITL's three phases (docs/PROTOCOL.md, "Reconciliation"):

1. **Start.** Only when nothing involving the registry is in flight: no transaction of it is
   unfinished and no message to it waits in the outbox (its books would lag the ledger).
   Otherwise the run ends at once as *start denied*. From the start, proposals involving the
   registry are answered UNAVAILABLE with 7002 and are retried by their senders, so neither
   side's blocks move until both have pinned their snapshots.
2. **Snapshot.** The hub pins a read transaction on its ledger (``article6.snapshot``), then
   delivers a ``ReconciliationRequest`` (fanout, depth); the registry pins one on its books
   before it answers. Both snapshots are the same books, so the hub lets the registry's
   proposals through again (the run is no longer *holding*: milliseconds after the start),
   and each side builds its hash tree from its snapshot while transactions go on.
3. **Totals** (``GetSnapshotTotals``), then **blocks**: the hub descends only into subtrees
   whose digests differ, one ``GetHashTreeNodes`` per level, and lists the blocks under the
   differing leaves (``ListSnapshotBlocks``). Each block one side has and the other has not,
   exactly so, is a discrepancy and its serials are frozen.
4. **End.** The run is *completed* or *blocks inconsistent*, as of the snapshots; the
   registry is told with a ``ReconciliationResult`` and lets its snapshot go.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import grpc
import grpc.aio
from google.protobuf.message import Message

from article6.codes import Code, Refusal
from article6.envelope import open_envelope
from article6.keys import KeyDirectory
from article6.limits import RECONCILIATION_FANOUT, RECONCILIATION_RPC_TIMEOUT_SECONDS
from article6.model import LedgerBlock
from article6.reconciliation import (
    Comparison,
    Node,
    Place,
    TotalsKey,
    choose_depth,
    compare,
    fold_totals,
)
from article6.snapshot import Snapshot
from article6.status import refusal_from_error
from article6.unit import Unit
from article6.v1 import envelope_pb2, reconciliation_pb2, registry_pb2_grpc, transaction_pb2
from article6.wire import held_block, held_block_message, node, run_status_words
from gateway.mailer import Mailer
from gateway.storage import ledger
from gateway.storage import reconciliations as runs
from gateway.storage.database import Database
from gateway.storage.schema import ledger_blocks

log = logging.getLogger("gateway.reconciliation")
DISAGREEING = frozenset({3, 4})  # totals or blocks inconsistent: an operator must look
RECEIPT = {"article6.v1.Receipt": transaction_pb2.Receipt}


@dataclass
class Traffic:
    round_trips: int = 0
    bytes_exchanged: int = 0


class RegistrySnapshot:
    """The registry's side of one run, asked over gRPC with signed envelopes."""

    def __init__(
        self,
        stub: registry_pb2_grpc.RegistryStub,
        mailer: Mailer,
        directory: KeyDirectory,
        registry: str,
        run_id: str,
        depth: int,
        traffic: Traffic,
    ) -> None:
        self.stub = stub
        self.depth = depth
        self.mailer = mailer
        self.directory = directory
        self.registry = registry
        self.run_id = run_id
        self.traffic = traffic

    async def _call(self, method: str, request: Message, answer_type: type[Message]) -> Message:
        sealed = self.mailer.seal(request, self.registry, datetime.now(UTC))
        envelope = envelope_pb2.Envelope.FromString(sealed)
        reply = await getattr(self.stub, method)(
            envelope, timeout=RECONCILIATION_RPC_TIMEOUT_SECONDS
        )
        self.traffic.round_trips += 1
        self.traffic.bytes_exchanged += len(sealed) + reply.ByteSize()
        opened = open_envelope(
            reply,
            accepted={answer_type.DESCRIPTOR.full_name: answer_type},
            directory=self.directory,
            recipient=self.mailer.hub_id,
            peer_identity=self.registry,  # the TLS handshake verified the registry
            now=datetime.now(UTC),
        )
        if getattr(opened.payload, "run_id", self.run_id) != self.run_id:
            raise Refusal(Code.RECONCILIATION_RUN_UNKNOWN, "the answer is for another run")
        return opened.payload

    async def deliver(self, message: Message) -> transaction_pb2.Receipt:
        receipt = await self._call("Deliver", message, transaction_pb2.Receipt)
        assert isinstance(receipt, transaction_pb2.Receipt)
        return receipt

    async def totals(self) -> tuple[dict[TotalsKey, tuple[int, int]], Node]:
        request = reconciliation_pb2.SnapshotTotalsRequest(run_id=self.run_id)
        answer = await self._call("GetSnapshotTotals", request, reconciliation_pb2.SnapshotTotals)
        assert isinstance(answer, reconciliation_pb2.SnapshotTotals)
        rows = [((row.unit_kind, row.vintage, row.cooperative_approach), row.unit_count,
                 row.block_count) for row in answer.rows]  # fmt: skip
        return fold_totals(rows), node(answer.root)

    async def children(self, parents: Sequence[tuple[int, int]]) -> list[Node]:
        request = reconciliation_pb2.HashTreeRequest(run_id=self.run_id)
        for depth, index in parents:
            request.parents.add(depth=depth, index=index)
        answer = await self._call("GetHashTreeNodes", request, reconciliation_pb2.HashTreeNodes)
        assert isinstance(answer, reconciliation_pb2.HashTreeNodes)
        return [node(message) for message in answer.nodes]

    async def blocks(self, leaves: Sequence[int]) -> list[LedgerBlock]:
        request = reconciliation_pb2.BlockListRequest(run_id=self.run_id)
        for index in leaves:
            request.leaves.add(depth=self.depth, index=index)
        answer = await self._call("ListSnapshotBlocks", request, reconciliation_pb2.BlockListing)
        assert isinstance(answer, reconciliation_pb2.BlockListing)
        return [held_block(message) for message in answer.blocks]


class Reconciler:
    def __init__(
        self,
        database: Database,
        mailer: Mailer,
        directory: KeyDirectory,
        channel: Callable[[str], grpc.aio.Channel],
        on_finished: Callable[[int], None] | None = None,
        fanout: int = RECONCILIATION_FANOUT,
    ) -> None:
        self.database = database
        self.mailer = mailer
        self.directory = directory
        self.channel = channel
        self.on_finished = on_finished  # told each run's final status (metrics)
        self.fanout = fanout

    async def run(self, registry: str) -> runs.Run:
        """One run with ``registry``, start to end; the recorded run."""
        run_id = f"RUN-{uuid.uuid4().hex[:16]}"
        now = datetime.now(UTC)
        denied = await self.database.write(partial(self._start, registry, run_id, now))
        if denied is None:
            try:
                await self._compare(registry, run_id)
            except (grpc.aio.AioRpcError, Refusal) as error:
                await self._deny(run_id, _reason(error))
            except Exception as error:  # never leave the registry's proposals held
                log.exception("reconciliation %s with %s failed", run_id, registry)
                await self._deny(run_id, f"the hub failed: {type(error).__name__}")
        run = await self.database.read(lambda c: runs.get_run(c, run_id))
        assert run is not None
        if self.on_finished is not None:
            self.on_finished(run.status)
        said = run_status_words(run.status)
        level = logging.WARNING if run.status in DISAGREEING else logging.INFO
        log.log(level, "reconciliation %s with %s: %s; %s", run_id, registry, said, run.detail,
                extra={"peer": registry})  # fmt: skip
        return run

    def _start(self, registry: str, run_id: str, now: datetime, unit: Unit) -> str | None:
        denied = runs.start_denied_because(unit.connection, registry)
        runs.insert_run(unit, run_id, registry, self.fanout, 0, now)
        if denied is not None:
            runs.end_run(unit, run_id, runs.START_DENIED, now, detail=denied)
        return denied

    async def _deny(self, run_id: str, reason: str) -> None:
        """End a run that could not be carried out (a run already ended keeps its status)."""
        now = datetime.now(UTC)

        def deny(unit: Unit) -> None:
            run = runs.get_run(unit.connection, run_id)
            if run is not None and run.open:
                runs.end_run(unit, run_id, runs.START_DENIED, now, detail=reason[:500])

        await self.database.write(deny)

    async def _progress(self, run_id: str, step: str) -> None:
        """Where an open run is, in its ``detail`` (``article6-admin reconcile`` shows it while
        it waits; the final detail replaces it)."""
        await self.database.write(lambda unit: runs.update_run(unit, run_id, detail=step[:500]))

    async def _compare(self, registry: str, run_id: str) -> None:
        count = await self.database.read(lambda c: ledger.count_of_registry(c, registry))
        depth = choose_depth(count, self.fanout)
        log.info("reconciliation %s with %s started: %s blocks in the ledger, fanout %d, "
                 "depth %d", run_id, registry, f"{count:,}", self.fanout, depth,
                 extra={"peer": registry})  # fmt: skip
        traffic = Traffic()
        stub = registry_pb2_grpc.RegistryStub(self.channel(registry))
        remote = RegistrySnapshot(
            stub, self.mailer, self.directory, registry, run_id, depth, traffic
        )
        request = reconciliation_pb2.ReconciliationRequest(
            run_id=run_id, fanout=self.fanout, depth=depth
        )
        request.snapshot_at.FromDatetime(datetime.now(UTC))
        await self._progress(run_id, "pinning both snapshots")
        snapshot = await asyncio.to_thread(Snapshot, self.database.read_engine, ledger_blocks)
        try:
            receipt = await remote.deliver(request)  # the registry pins before it answers
            if not receipt.accepted:
                raise Refusal(Code.RECONCILIATION_START_DENIED, f"{registry} did not take the run")
            await self.database.write(partial(runs.release, run_id=run_id, now=datetime.now(UTC)))
            await self._progress(run_id, f"building both trees over {count:,} ledger blocks")
            await self._compare_snapshots(registry, run_id, depth, snapshot, remote, traffic)
        finally:
            snapshot.close()

    async def _compare_snapshots(
        self,
        registry: str,
        run_id: str,
        depth: int,
        snapshot: Snapshot,
        remote: RegistrySnapshot,
        traffic: Traffic,
    ) -> None:
        tree = await snapshot.read(
            partial(ledger.tree_of_registry, registry=registry, fanout=self.fanout, depth=depth)
        )
        await self.database.write(
            lambda unit: runs.update_run(
                unit, run_id, depth=depth, hub_blocks=tree.root.block_count
            )
        )

        async def validated(agree: bool) -> None:
            status = runs.VALIDATED if agree else runs.TOTALS_INCONSISTENT
            said = "agree" if agree else "differ"
            await self.database.write(lambda unit: runs.update_run(
                unit, run_id, status=status, detail=f"totals {said}; comparing the roots"
            ))  # fmt: skip

        progress = partial(self._progress, run_id)
        lookup = partial(_blocks_at, snapshot, registry)
        comparison = await compare(tree, remote, validated, progress, lookup)
        status = _status(comparison)
        await self.database.write(
            partial(self._finish, registry, run_id, comparison, status, traffic)
        )
        result = reconciliation_pb2.ReconciliationResult(
            run_id=run_id, status=reconciliation_pb2.ReconciliationStatus.ValueType(status)
        )
        result.hub_blocks.extend(held_block_message(b) for b in comparison.hub_only)
        result.registry_blocks.extend(held_block_message(b) for b in comparison.registry_only)
        try:
            await remote.deliver(result)
        except (grpc.aio.AioRpcError, Refusal) as error:  # the run stands; telling is a courtesy
            log.warning("could not tell %s the result of %s: %s", registry, run_id, _reason(error))
        await self.database.write(
            lambda unit: runs.update_run(
                unit,
                run_id,
                round_trips=traffic.round_trips,
                bytes_exchanged=traffic.bytes_exchanged,
            )
        )

    def _finish(
        self,
        registry: str,
        run_id: str,
        comparison: Comparison,
        status: int,
        traffic: Traffic,
        unit: Unit,
    ) -> None:
        now = datetime.now(UTC)
        runs.add_discrepancies(unit, registry, "hub", comparison.hub_only, now, run_id)
        runs.add_discrepancies(unit, registry, "registry", comparison.registry_only, now, run_id)
        differing = len(comparison.hub_only) + len(comparison.registry_only)
        detail = (
            f"{differing} blocks differ in {comparison.differing_leaves} leaves; totals "
            f"{'agree' if comparison.totals_agree else 'differ'}"
        )
        runs.end_run(unit, run_id, status, now, registry_blocks=comparison.registry_blocks,
            round_trips=traffic.round_trips, bytes_exchanged=traffic.bytes_exchanged,
            detail=detail,
        )  # fmt: skip


async def _blocks_at(
    snapshot: Snapshot, registry: str, places: Sequence[Place]
) -> list[LedgerBlock]:
    return await snapshot.read(partial(ledger.blocks_at, registry=registry, places=places))


def _status(comparison: Comparison) -> int:
    if comparison.hub_only or comparison.registry_only:
        return runs.BLOCKS_INCONSISTENT
    if not comparison.totals_agree:
        return runs.TOTALS_INCONSISTENT
    return runs.COMPLETED


def _reason(error: Exception) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        refusal = refusal_from_error(error)
        return str(refusal) if refusal else f"{error.code().name}: {error.details()}"
    return str(error)
