"""``article6.v1.AdminService``: what operators call, on its own port.

Callers authenticate with a client certificate whose identity is listed in the hub's
``admin_identities``; anyone else gets PERMISSION_DENIED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio

from article6.aef.workbook import NOT_A_WORKBOOK, export_problem, exported
from article6.outbox import OutboxMessage
from article6.tls import peer_identity
from article6.v1 import admin_pb2, admin_pb2_grpc, reconciliation_pb2, transaction_pb2
from article6.wire import held_block_message
from gateway import aef
from gateway.audit import Entry, Head
from gateway.config import RegistryEntry
from gateway.storage import audit, ledger
from gateway.storage import reconciliations as runs
from gateway.storage.database import Database
from gateway.storage.records import (
    AuthorizationRecord,
    AuthorizationVersionRecord,
    TransactionRecord,
    authorization_versions,
    decode_results,
    get_authorization,
    get_transaction,
    history,
    list_authorizations,
    list_outbox,
    list_transactions,
    retry_dead_letter,
    retry_dead_letters,
    set_suspended,
)

log = logging.getLogger("gateway.admin")
Context = grpc.aio.ServicerContext[Any, Any]
LIMIT_DEFAULT, LIMIT_MAX = 100, 1000


def _limit(requested: int) -> int:
    return min(requested or LIMIT_DEFAULT, LIMIT_MAX)


def transaction_summary(record: TransactionRecord) -> admin_pb2.TransactionSummary:
    summary = admin_pb2.TransactionSummary(
        transaction=transaction_pb2.Transaction.FromString(record.body),
        status=transaction_pb2.TransactionStatus.ValueType(record.status.value),
    )
    for code, detail in record.results:
        summary.results.add(code=code.value, detail=detail)
    summary.proposed_at.FromDatetime(record.proposed_at)
    summary.status_at.FromDatetime(record.status_at)
    return summary


def run_message(run: runs.Run) -> admin_pb2.ReconciliationRun:
    message = admin_pb2.ReconciliationRun(
        run_id=run.run_id, registry=run.registry,
        status=reconciliation_pb2.ReconciliationStatus.ValueType(run.status), open=run.open,
        fanout=run.fanout, depth=run.depth, hub_blocks=run.hub_blocks,
        registry_blocks=run.registry_blocks, round_trips=run.round_trips,
        bytes_exchanged=run.bytes_exchanged, detail=run.detail, holding=run.holding,
    )  # fmt: skip
    message.started_at.FromDatetime(run.started_at)
    if run.finished_at is not None:
        message.finished_at.FromDatetime(run.finished_at)
    if run.released_at is not None:
        message.released_at.FromDatetime(run.released_at)
    return message


def discrepancy_message(item: runs.Discrepancy) -> admin_pb2.Discrepancy:
    message = admin_pb2.Discrepancy(
        discrepancy_id=item.id, run_id=item.run_id or "", transaction_id=item.transaction_id or "",
        registry=item.registry, side=item.side, block=held_block_message(item.block),
        open=item.open, resolved_by=item.resolved_by, reason=item.reason,
    )  # fmt: skip
    message.found_at.FromDatetime(item.found_at)
    if item.resolved_at is not None:
        message.resolved_at.FromDatetime(item.resolved_at)
    return message


def outbox_entry(message: OutboxMessage) -> admin_pb2.OutboxEntry:
    entry = admin_pb2.OutboxEntry(
        entry_id=message.id,
        recipient=message.recipient,
        message_id=message.message_id,
        payload_type=message.payload_type,
        transaction_id=message.transaction_id or "",
        attempts=message.attempts,
        last_error=message.last_error,
    )
    if message.created_at:
        entry.created_at.FromDatetime(message.created_at)
    if message.next_attempt_at and message.state == "pending":
        entry.next_attempt_at.FromDatetime(message.next_attempt_at)
    return entry


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(
        self,
        database: Database,
        operators: frozenset[str],
        registries: Callable[[], dict[str, RegistryEntry]],
        key_ids: Callable[[str], list[str]],
        on_change: Callable[[], None],
        reconcile: Callable[[str], Awaitable[runs.Run]] | None = None,
        head_signed: Callable[[Head], bool] | None = None,
    ) -> None:
        self.database = database
        self.operators = operators
        self.registries = registries
        self.key_ids = key_ids
        self.on_change = on_change
        self.reconcile = reconcile
        self.head_signed = head_signed or (lambda head: False)

    async def _authorize(self, context: Context) -> str:
        identity = peer_identity(context)
        if identity not in self.operators:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not an operator identity")
        assert identity is not None
        return identity

    async def ListTransactions(
        self, request: admin_pb2.ListTransactionsRequest, context: Context
    ) -> admin_pb2.ListTransactionsResponse:
        await self._authorize(context)
        records = await self.database.read(
            lambda c: list_transactions(
                c, request.status, request.type, request.registry, _limit(request.limit)
            )
        )
        return admin_pb2.ListTransactionsResponse(
            transactions=[transaction_summary(record) for record in records]
        )

    async def GetTransaction(
        self, request: admin_pb2.GetTransactionRequest, context: Context
    ) -> admin_pb2.GetTransactionResponse:
        await self._authorize(context)
        record = await self.database.read(lambda c: get_transaction(c, request.transaction_id))
        if record is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no transaction {request.transaction_id}"
            )
        assert record is not None
        changes = await self.database.read(lambda c: history(c, request.transaction_id))
        response = admin_pb2.GetTransactionResponse(summary=transaction_summary(record))
        for status, at, results in changes:
            change = response.history.add(
                status=transaction_pb2.TransactionStatus.ValueType(status)
            )
            change.at.FromDatetime(at)
            for code, detail in decode_results(results):
                change.results.add(code=code.value, detail=detail)
        return response

    def _info(self, entry: RegistryEntry) -> admin_pb2.RegistryInfo:
        return admin_pb2.RegistryInfo(
            registry_id=entry.registry_id,
            kind=entry.kind,
            endpoint=entry.endpoint,
            suspended=entry.suspended,
            key_ids=self.key_ids(entry.registry_id),
        )

    async def ListRegistries(
        self, request: admin_pb2.ListRegistriesRequest, context: Context
    ) -> admin_pb2.ListRegistriesResponse:
        await self._authorize(context)
        entries = sorted(self.registries().values(), key=lambda entry: entry.registry_id)
        return admin_pb2.ListRegistriesResponse(registries=[self._info(e) for e in entries])

    async def SetRegistryStatus(
        self, request: admin_pb2.SetRegistryStatusRequest, context: Context
    ) -> admin_pb2.SetRegistryStatusResponse:
        operator = await self._authorize(context)
        if request.registry_id not in self.registries():
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no registry {request.registry_id}")
        now = datetime.now(UTC)
        await self.database.write(
            lambda c: set_suspended(
                c, request.registry_id, request.suspended, request.reason, now, operator
            )
        )
        self.on_change()
        log.warning(
            "registry %s %s by %s: %s", request.registry_id,
            "suspended" if request.suspended else "resumed", operator, request.reason,
            extra={"peer": request.registry_id},
        )  # fmt: skip
        entry = self.registries()[request.registry_id]
        return admin_pb2.SetRegistryStatusResponse(registry=self._info(entry))

    async def ListOutbox(
        self, request: admin_pb2.ListOutboxRequest, context: Context
    ) -> admin_pb2.ListOutboxResponse:
        await self._authorize(context)
        messages = await self.database.read(
            lambda c: list_outbox(c, request.dead_letters, request.registry, _limit(request.limit))
        )
        return admin_pb2.ListOutboxResponse(entries=[outbox_entry(m) for m in messages])

    async def RetryDeadLetter(
        self, request: admin_pb2.RetryDeadLetterRequest, context: Context
    ) -> admin_pb2.RetryDeadLetterResponse:
        operator = await self._authorize(context)
        now = datetime.now(UTC)
        message = await self.database.write(
            lambda c: retry_dead_letter(c, request.entry_id, now, operator)
        )
        if message is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no dead letter {request.entry_id}")
        assert message is not None
        self.on_change()
        return admin_pb2.RetryDeadLetterResponse(entry=outbox_entry(message))

    async def RetryDeadLetters(
        self, request: admin_pb2.RetryDeadLettersRequest, context: Context
    ) -> admin_pb2.RetryDeadLettersResponse:
        operator = await self._authorize(context)
        now = datetime.now(UTC)
        count = await self.database.write(
            lambda c: retry_dead_letters(c, request.registry, now, operator)
        )
        self.on_change()
        return admin_pb2.RetryDeadLettersResponse(count=count)

    async def ListHoldings(
        self, request: admin_pb2.ListHoldingsRequest, context: Context
    ) -> admin_pb2.ListHoldingsResponse:
        await self._authorize(context)
        blocks = await self.database.read(
            lambda c: ledger.blocks_of_registry(c, request.registry or None)
        )
        return admin_pb2.ListHoldingsResponse(blocks=[held_block_message(b) for b in blocks])

    # --- reconciliation ------------------------------------------------------------------

    async def RunReconciliation(
        self, request: admin_pb2.RunReconciliationRequest, context: Context
    ) -> admin_pb2.RunReconciliationResponse:
        identity = await self._authorize(context)
        if request.registry not in self.registries() or self.reconcile is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no registry {request.registry!r}")
        assert self.reconcile is not None
        log.info("%s runs a reconciliation with %s", identity, request.registry)
        run = await self.reconcile(request.registry)
        return admin_pb2.RunReconciliationResponse(run=run_message(run))

    async def ListReconciliationRuns(
        self, request: admin_pb2.ListReconciliationRunsRequest, context: Context
    ) -> admin_pb2.ListReconciliationRunsResponse:
        await self._authorize(context)
        found = await self.database.read(
            lambda c: runs.list_runs(c, request.registry, _limit(request.limit))
        )
        return admin_pb2.ListReconciliationRunsResponse(runs=[run_message(r) for r in found])

    async def GetReconciliationRun(
        self, request: admin_pb2.GetReconciliationRunRequest, context: Context
    ) -> admin_pb2.GetReconciliationRunResponse:
        await self._authorize(context)

        def read(connection: Any) -> tuple[runs.Run | None, list[runs.Discrepancy]]:
            run = runs.get_run(connection, request.run_id)
            found = runs.list_discrepancies(connection, run_id=request.run_id) if run else []
            return run, found

        run, found = await self.database.read(read)
        if run is None:
            return admin_pb2.GetReconciliationRunResponse(found=False)
        return admin_pb2.GetReconciliationRunResponse(
            found=True, run=run_message(run),
            discrepancies=[discrepancy_message(item) for item in found],
        )  # fmt: skip

    async def ListDiscrepancies(
        self, request: admin_pb2.ListDiscrepanciesRequest, context: Context
    ) -> admin_pb2.ListDiscrepanciesResponse:
        await self._authorize(context)
        found = await self.database.read(
            lambda c: runs.list_discrepancies(
                c, registry=request.registry, open_only=request.open_only
            )
        )
        return admin_pb2.ListDiscrepanciesResponse(
            discrepancies=[discrepancy_message(item) for item in found]
        )

    async def ResolveDiscrepancy(
        self, request: admin_pb2.ResolveDiscrepancyRequest, context: Context
    ) -> admin_pb2.ResolveDiscrepancyResponse:
        identity = await self._authorize(context)
        reason = request.reason.strip()
        if not reason:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a reason is required")
        now = datetime.now(UTC)
        item = await self.database.write(
            lambda c: runs.resolve(c, request.discrepancy_id, identity, reason[:2000], now)
        )
        if item is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no open discrepancy {request.discrepancy_id}"
            )
        assert item is not None
        log.warning("%s resolved discrepancy %d (%s): %s", identity, item.id,
                    runs.discrepancy_serials(item), reason[:200])  # fmt: skip
        return admin_pb2.ResolveDiscrepancyResponse(discrepancy=discrepancy_message(item))

    async def ListAuditEntries(
        self, request: admin_pb2.ListAuditEntriesRequest, context: Context
    ) -> admin_pb2.ListAuditEntriesResponse:
        await self._authorize(context)
        limit = _limit(request.limit)
        found = await self.database.read(lambda c: audit.recent(c, request.subject, limit))
        entries = [_audit_entry(entry, digest) for entry, digest in found]
        return admin_pb2.ListAuditEntriesResponse(entries=entries)

    async def ListAuthorizations(
        self, request: admin_pb2.ListAuthorizationsRequest, context: Context
    ) -> admin_pb2.ListAuthorizationsResponse:
        await self._authorize(context)

        def read(connection: Any) -> list[admin_pb2.AuthorizationSummary]:
            found = list_authorizations(connection, request.party, request.cooperative_approach)
            return [_summary(record, current) for record, current in found]

        found = await self.database.read(read)
        return admin_pb2.ListAuthorizationsResponse(authorizations=found)

    async def GetAuthorization(
        self, request: admin_pb2.GetAuthorizationRequest, context: Context
    ) -> admin_pb2.GetAuthorizationResponse:
        await self._authorize(context)

        def read(connection: Any) -> admin_pb2.GetAuthorizationResponse | None:
            record = get_authorization(connection, request.authorization_id)
            if record is None:
                return None
            versions = authorization_versions(connection, request.authorization_id)
            return admin_pb2.GetAuthorizationResponse(
                summary=_summary(record, versions[-1]),
                versions=[_version_message(version) for version in versions],
            )

        found = await self.database.read(read)
        if found is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no authorization {request.authorization_id[:64]}"
            )
        assert found is not None
        return found

    async def ExportPartyAef(
        self, request: admin_pb2.ExportPartyAefRequest, context: Context
    ) -> admin_pb2.ExportPartyAefResponse:
        await self._authorize(context)
        problem = export_problem(request.format, request.table)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        year = request.year or datetime.now(UTC).year
        directory = await self._party_directory(request.party, context)
        # Written while the ledger is open: the actions are read as the table is written.
        content, workbook = await self.database.read(lambda c: exported(
            aef.export(c, directory, request.party, year), request.format, request.table
        ))  # fmt: skip
        return admin_pb2.ExportPartyAefResponse(content=content, workbook=workbook)

    async def CheckPartyAef(
        self, request: admin_pb2.CheckPartyAefRequest, context: Context
    ) -> admin_pb2.CheckPartyAefResponse:
        operator = await self._authorize(context)
        year = request.year or datetime.now(UTC).year
        directory = await self._party_directory(request.party, context)
        books = await self.database.read(lambda c: aef.ledger(c, directory, request.party, year))
        try:
            outcome, annotated = await asyncio.to_thread(aef.check, request.workbook, books)
        except NOT_A_WORKBOOK as error:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"not an AEF workbook (.xlsx): {error}"[:200]
            )
            raise  # abort raises; this keeps the type checker's flow
        log.info(
            "AEF of %s for %d checked by %s: %d inconsistencies", request.party, year, operator,
            len(outcome.found), extra={"peer": operator},
        )  # fmt: skip
        return admin_pb2.CheckPartyAefResponse(
            consistent=outcome.consistent,
            inconsistencies=[
                admin_pb2.AefInconsistency(
                    sheet=item.sheet, row=item.row, kind=item.kind, detail=item.detail
                )
                for item in outcome.found
            ],
            workbook=annotated,
        )

    async def _party_directory(self, party: str, context: Context) -> dict[str, str]:
        """Each registry's Party; NOT_FOUND unless ``party`` has a registry of its own."""
        directory = aef.parties(self.registries())
        if party not in directory.values() or not party:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no registry of Party {party[:3]!r} in the hub's directory",
            )
        return directory

    async def VerifyAuditTrail(
        self, request: admin_pb2.VerifyAuditTrailRequest, context: Context
    ) -> admin_pb2.VerifyAuditTrailResponse:
        await self._authorize(context)
        head, verdict = await self.database.read(lambda c: audit.verified(c, self.head_signed))
        return admin_pb2.VerifyAuditTrailResponse(
            intact=verdict.intact, entries=verdict.records, head_seq=head.seq,
            head_hash=head.hash, head_key_id=head.key_id, problems=verdict.problems,
        )  # fmt: skip


def _audit_entry(entry: Entry, digest: str) -> admin_pb2.AuditEntry:
    return admin_pb2.AuditEntry(
        seq=entry.seq, at=entry.at, actor=entry.actor, action=entry.action,
        subject=entry.subject, detail_json=audit.detail_json(entry.detail), hash=digest,
    )  # fmt: skip


def _version_message(version: AuthorizationVersionRecord) -> admin_pb2.AuthorizationVersion:
    message = admin_pb2.AuthorizationVersion(
        authorization=transaction_pb2.Authorization.FromString(version.body),
        registry=version.registry,
        transaction_id=version.transaction_id,
    )
    message.recorded_at.FromDatetime(version.recorded_at)
    return message


def _summary(
    record: AuthorizationRecord, current: AuthorizationVersionRecord
) -> admin_pb2.AuthorizationSummary:
    assert current.version == record.grant.version, (record, current.version)
    return admin_pb2.AuthorizationSummary(
        current=_version_message(current), first_transferred=record.reserved
    )
