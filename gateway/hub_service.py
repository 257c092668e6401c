"""``article6.v1.Hub``: what registries call.

Each RPC authenticates its envelopes on the event loop (``open_envelope``), then hands them
to the writer thread as one unit of work (a batch's envelopes together; a unary RPC is a
batch of one), which takes each exactly once (``article6.inbox``: a replay gets the stored
receipt, byte for byte; other bytes under the same id get 3001), checks the sender's
standing, applies the lifecycle, and signs the receipt that the inbox records. A retry that
arrives while the original is still being processed waits behind it on the writer and then
finds its receipt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial

import grpc
from google.protobuf.message import Message

from article6.codes import Code, Refusal
from article6.envelope import Opened, open_envelope
from article6.headers import check_fresh
from article6.inbox import Answer, Taken, exactly_once_all
from article6.keys import KeyDirectory
from article6.model import Status, UnitBlock
from article6.ratelimit import RateLimiter
from article6.refusals import OnRefusal
from article6.service import Batch, Context, EnvelopeMethod, envelope_service, recorded
from article6.tls import peer_identity
from article6.unit import Unit
from article6.v1 import envelope_pb2, reconciliation_pb2, transaction_pb2
from article6.wire import transaction_spec
from gateway.checks import Peer
from gateway.legs import confirm
from gateway.lifecycle import Lifecycle, Outcome
from gateway.mailer import Mailer
from gateway.reads import Reads
from gateway.storage.database import Database
from gateway.storage.records import get_transaction
from gateway.storage.schema import inbox

log = logging.getLogger("gateway.hub")
Handle = Callable[[Opened, Reads, Unit, datetime], Outcome]
"""What a message does, applied in a unit of work at a moment, with what its batch read ahead."""

PROPOSAL = {"article6.v1.TransactionProposal": transaction_pb2.TransactionProposal}
NOTICE = {"article6.v1.StatusNotice": transaction_pb2.StatusNotice}
QUERY = {"article6.v1.StatusQuery": transaction_pb2.StatusQuery}
CONFIRMATION = {"article6.v1.LegConfirmation": reconciliation_pb2.LegConfirmation}


class HubService:
    def __init__(
        self,
        hub_id: str,
        directory: KeyDirectory,
        database: Database,
        lifecycle: Lifecycle,
        mailer: Mailer,
        peers: Callable[[], Mapping[str, Peer]],
        on_refusal: OnRefusal | None = None,
    ) -> None:
        self.hub_id = hub_id
        self.directory = directory
        self.database = database
        self.lifecycle = lifecycle
        self.mailer = mailer
        self.peers = peers
        self.on_refusal = on_refusal
        self._handles: dict[str, Handle] = {
            **dict.fromkeys(PROPOSAL, self._proposed), **dict.fromkeys(NOTICE, self._notified),
            **dict.fromkeys(CONFIRMATION, self._confirmed),
        }  # fmt: skip

    def handler(self, limiter: RateLimiter | None = None) -> grpc.GenericRpcHandler[bytes, bytes]:
        batch = Batch(  # SubmitBatch takes each envelope as its unary RPC would
            "SubmitBatch",
            takes={**dict.fromkeys(PROPOSAL, self._propose), **dict.fromkeys(NOTICE, self._notify),
                   **dict.fromkeys(CONFIRMATION, self._confirm)},
            apply=self._apply_all,
            methods=dict.fromkeys(QUERY, self.get_transaction_status),
        )  # fmt: skip
        return envelope_service(
            "article6.v1.Hub", self.rpcs(), on_refusal=self.on_refusal, limiter=limiter,
            batch=batch,
        )  # fmt: skip

    def rpcs(self) -> dict[str, EnvelopeMethod]:
        """The unary RPCs, by name; each recorded message is a batch of one."""
        return {
            "ProposeTransaction": recorded(self._propose, self._apply_all),
            "NotifyStatus": recorded(self._notify, self._apply_all),
            "GetTransactionStatus": self.get_transaction_status,
            "SubmitReconciliation": recorded(self._confirm, self._apply_all),
        }

    def _propose(self, envelope: envelope_pb2.Envelope, context: Context) -> Taken:
        return self._take(PROPOSAL, envelope, context)

    def _notify(self, envelope: envelope_pb2.Envelope, context: Context) -> Taken:
        return self._take(NOTICE, envelope, context)

    def _confirm(self, envelope: envelope_pb2.Envelope, context: Context) -> Taken:
        return self._take(CONFIRMATION, envelope, context)

    def _take(
        self,
        accepted: Mapping[str, type[Message]],
        envelope: envelope_pb2.Envelope,
        context: Context,
    ) -> Taken:
        """Authenticate a message (on the event loop) and say what applying it alone does."""
        opened = self._open(envelope, context, accepted)
        return opened, partial(self._respond, opened, None)

    async def _apply_all(self, taken: Sequence[Taken]) -> list[Answer]:
        """Apply messages exactly once in one unit of work on the writer (one change of a
        group commit, however many messages)."""
        answers: list[Answer] = await self.database.write(partial(self._take_all, taken))
        return answers

    def _take_all(self, taken: Sequence[Taken], unit: Unit) -> list[Answer]:
        """The batch's messages, each given what the batch read ahead (gateway.reads) before
        the first is applied, each time the writer runs the change."""
        reads = _reads(unit, [opened for opened, _ in taken])
        batch = [(opened, partial(self._respond, opened, reads)) for opened, _ in taken]
        return exactly_once_all(unit, inbox, batch)

    def _open(
        self,
        envelope: envelope_pb2.Envelope,
        context: Context,
        accepted: Mapping[str, type[Message]],
    ) -> Opened:
        return open_envelope(
            envelope,
            accepted=accepted,
            directory=self.directory,
            recipient=self.hub_id,
            peer_identity=peer_identity(context) or "",
            now=datetime.now(UTC),
            known_registries=self.peers().keys(),
        )

    def _receipt(self, opened: Opened, outcome: Outcome, now: datetime) -> bytes:
        receipt = transaction_pb2.Receipt(
            in_reply_to=opened.header.message_id,
            request_payload_sha256=opened.digest,
            accepted=outcome.accepted,
            transaction_id=outcome.transaction_id,
            status=transaction_pb2.TransactionStatus.ValueType(
                outcome.status.value if outcome.status else 0
            ),
        )
        for code, detail in outcome.results:
            receipt.results.add(code=code.value, detail=detail)
        return self.mailer.seal(receipt, opened.signer, now)

    def _respond(self, opened: Opened, reads: Reads | None, unit: Unit, now: datetime) -> bytes:
        """Apply a message (``reads``: its batch's; None: it reads alone) and sign its receipt."""
        sender = opened.signer
        peer = self.peers().get(sender)
        if peer is None or peer.suspended:
            raise Refusal(Code.REGISTRY_SUSPENDED, f"{sender} is suspended")
        if reads is None:
            reads = _reads(unit, [opened])
        outcome = self._handles[opened.envelope.payload_type](opened, reads, unit, now)
        # Logged once committed: a change rolled back or run again logs nothing twice.
        unit.after_commit(partial(
            log.info,
            "%s %s: %s",
            opened.envelope.payload_type.rsplit(".", 1)[-1],
            outcome.transaction_id,
            outcome.status.name if outcome.status else "refused",
            extra={"transaction_id": outcome.transaction_id,
                   "message_id": opened.header.message_id, "peer": sender,
                   "codes": [code.value for code, _ in outcome.results]},
        ))  # fmt: skip
        return self._receipt(opened, outcome, now)

    def _proposed(self, opened: Opened, reads: Reads, unit: Unit, now: datetime) -> Outcome:
        proposal = opened.payload
        assert isinstance(proposal, transaction_pb2.TransactionProposal)
        busy = reads.reconciling([opened.signer, proposal.transaction.acquiring_registry])
        if busy is not None:  # raised: nothing is recorded, and the sender retries
            raise Refusal(Code.SNAPSHOT_IN_PROGRESS, f"{busy} is being reconciled")
        transaction, peers = proposal.transaction, self.peers()
        return self.lifecycle.propose(unit, opened.signer, transaction, peers, now, reads)

    def _notified(self, opened: Opened, reads: Reads, unit: Unit, now: datetime) -> Outcome:
        notice, sender = opened.payload, opened.signer
        assert isinstance(notice, transaction_pb2.StatusNotice)
        transaction_id = notice.transaction_id
        record = reads.record(transaction_id)
        if record is None or sender not in {
            record.transferring_registry,
            record.acquiring_registry,
        }:
            return Outcome(transaction_id, None, [(Code.TRANSACTION_UNKNOWN, transaction_id)])
        if sender != record.acquiring_registry:
            detail = "only the acquiring registry reports acceptance"
            return Outcome(
                transaction_id, record.status, [(Code.REGISTRY_NOT_PARTY_TO_UNITS, detail)]
            )
        decisions = {Status.ACCEPTED.value, Status.REJECTED.value}
        if notice.status not in decisions:
            detail = f"a registry reports ACCEPTED (8) or REJECTED (6), not {notice.status}"
            return Outcome(
                transaction_id, record.status, [(Code.STATUS_TRANSITION_INVALID, detail)]
            )
        results = [(Code(r.code), r.detail) for r in notice.results if r.code in _CODES]
        decision = Status(notice.status)
        return self.lifecycle.decide(unit, transaction_id, decision, results, now, reads=reads)

    @staticmethod
    def _confirmed(opened: Opened, _: Reads, unit: Unit, now: datetime) -> Outcome:
        """A registry's leg confirmation, compared with the ledger at once (gateway.legs)."""
        confirmation = opened.payload
        assert isinstance(confirmation, reconciliation_pb2.LegConfirmation)
        return confirm(unit, opened.signer, confirmation, now)

    async def get_transaction_status(
        self, envelope: envelope_pb2.Envelope, context: Context
    ) -> envelope_pb2.Envelope:
        opened = self._open(envelope, context, QUERY)
        query = opened.payload
        assert isinstance(query, transaction_pb2.StatusQuery)
        now = datetime.now(UTC)
        check_fresh(opened.header, now)  # answers are not recorded: every query is new
        record = await self.database.read(lambda c: get_transaction(c, query.transaction_id))
        answer = transaction_pb2.StatusAnswer(in_reply_to=opened.header.message_id)
        involved = record is not None and opened.signer in {
            record.transferring_registry,
            record.acquiring_registry,
        }
        if record is not None and involved:
            answer.found = True
            answer.transaction.ParseFromString(record.body)
            answer.status = transaction_pb2.TransactionStatus.ValueType(record.status.value)
            answer.status_at.FromDatetime(record.status_at)
            for code, detail in record.results:
                answer.results.add(code=code.value, detail=detail)
        else:
            answer.results.add(code=Code.TRANSACTION_UNKNOWN.value, detail=query.transaction_id)
        return envelope_pb2.Envelope.FromString(self.mailer.seal(answer, opened.signer, now))


_CODES = frozenset(code.value for code in Code)


def _reads(unit: Unit, batch: Sequence[Opened]) -> Reads:
    """Read ahead what the batch's proposals and notices read (gateway.reads)."""
    named: list[str] = []
    proposing: list[str] = []
    proposed: list[tuple[UnitBlock, ...]] = []
    accepted: list[str] = []
    confirmations = False
    for opened in batch:
        payload = opened.payload
        if isinstance(payload, transaction_pb2.TransactionProposal):
            named.append(payload.transaction.transaction_id)
            proposing += [opened.signer, payload.transaction.acquiring_registry]
            proposed += _blocks(payload.transaction)
        elif isinstance(payload, transaction_pb2.StatusNotice):
            named.append(payload.transaction_id)
            if payload.status == Status.ACCEPTED.value:
                accepted.append(payload.transaction_id)
        elif isinstance(payload, reconciliation_pb2.LegConfirmation):
            named.append(payload.transaction_id)
            confirmations = True
    reads = Reads.of(unit.connection, named, proposing, confirmations)
    return reads.with_ledger(unit, proposed, accepted)


def _blocks(proposed: transaction_pb2.Transaction) -> list[tuple[UnitBlock, ...]]:
    """A proposal's blocks, as a list of one; none if it is refused before it reads any."""
    try:
        return [transaction_spec(proposed).blocks]
    except Refusal:
        return []
