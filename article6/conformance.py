"""The conformance kit: play the hub against a registry, and check it behaves as
docs/PROTOCOL.md says. ``article6 conformance registry`` runs it from the command line.

Run it against a registry in a test network, never in production: it delivers a real
acquisition and its completion, so the registry's books gain the kit's units (in a serial
space of the kit's own, ``--space``). The battery, in order:

- mTLS: a client without a certificate is refused; the hub's certificate is taken;
- envelopes: malformed bytes (1010), a bad signature (1023), an unknown key (1024), another
  recipient (1034), a stale message (1036) are each refused with their code, recording nothing;
- acquisition: an offer into an unknown account is terminated with a code; one into the
  account under test is accepted;
- idempotency: the same delivery again gets the same receipt, byte for byte; the same message
  id with other bytes is refused (3001);
- exactly once: the completion notice delivered twice (a new message id the second time, as a
  hub that lost its record would) adds the units once, as the registry's own snapshot shows;
- reconciliation: a snapshot request is taken; totals, hash-tree children and leaf blocks are
  answered, signed, consistent with the units delivered; an unknown run is refused (7003).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from google.protobuf.message import Message

from article6.codes import Code
from article6.envelope import open_envelope, seal
from article6.headers import new_header
from article6.identifiers import format_account_id
from article6.keys import KeyDirectory, SigningKey, read_key_file
from article6.pki import RegistryFiles
from article6.reconciliation import Tree
from article6.status import Failure, refusal_from_error
from article6.tls import TlsMaterial, channel_credentials, channel_options, server_credentials
from article6.v1 import (
    envelope_pb2,
    hub_pb2_grpc,
    reconciliation_pb2,
    registry_pb2_grpc,
    transaction_pb2,
    units_pb2,
)
from article6.wire import held_block

T = transaction_pb2
R = reconciliation_pb2
DELIVER = "/article6.v1.Registry/Deliver"
PROPOSE = "/article6.v1.Hub/ProposeTransaction"


@dataclass
class Check:
    name: str
    passed: bool
    reason: str


@dataclass
class Battery:
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, test: Callable[[], str | None]) -> bool:
        """Run one check: ``test`` returns None on success or the reason it failed."""
        try:
            reason = test()
        except (grpc.RpcError, AssertionError, ValueError) as error:
            reason = f"{type(error).__name__}: {_describe(error)}"
        self.checks.append(Check(name, reason is None, reason or "ok"))
        return reason is None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def table(self) -> str:
        width = max(len(check.name) for check in self.checks)
        lines = [f"{'check':<{width}}  result  reason", f"{'-' * width}  ------  ------"]
        lines += [f"{c.name:<{width}}  {'pass' if c.passed else 'FAIL':<6}  {c.reason}"
                  for c in self.checks]  # fmt: skip
        return "\n".join(lines)


def _describe(error: Exception) -> str:
    if isinstance(error, grpc.RpcError):
        refusal = refusal_from_error(error)
        code = error.code()
        return f"{code.name} {refusal}" if refusal else f"{code.name}"
    return str(error)[:200]


@dataclass
class RegistryUnderTest:
    """Where the registry is, and what the kit plays it with (the hub's credentials)."""

    endpoint: str
    registry_id: str
    account: str  # an open account that takes units of ``approach``
    pki: Path
    hub_id: str = "HUB"
    space: str = "KIT01"  # the serial space of the kit's units
    approach: str = "CA0001"
    vintage: int = 2024
    # Where the kit serves article6.v1.Hub itself, for the status-recovery check; the registry
    # must then be configured with this address as its hub's. None: that check is skipped.
    listen: str | None = None
    recovery_timeout_seconds: float = 120.0


class _Kit:
    """One end of the conversation the kit plays (``me``, talking to ``peer``): it signs with
    ``me``'s key and opens what ``peer`` signed."""

    def __init__(self, me: str, peer: str, pki: Path) -> None:
        self.me = me
        self.peer = peer
        files = RegistryFiles(pki, me)
        self.key = SigningKey.from_pem(files.signing_key.read_bytes())
        self.directory: KeyDirectory = read_key_file(pki / "keys.toml")
        self.tls = TlsMaterial.load(files)

    def _seal(
        self,
        message: Message,
        key: SigningKey | None = None,
        recipient: str = "",
        now: datetime | None = None,
    ) -> envelope_pb2.Envelope:
        stamped = new_header(self.me, recipient or self.peer, now or datetime.now(UTC))
        message.header.CopyFrom(stamped)  # type: ignore[attr-defined]
        return seal(message, [key or self.key])

    def _open(self, reply: envelope_pb2.Envelope, kind: type[Message]) -> Message:
        return open_envelope(
            reply, accepted={kind.DESCRIPTOR.full_name: kind}, directory=self.directory,
            recipient=self.me, peer_identity=self.peer, now=datetime.now(UTC),
        ).payload  # fmt: skip


class RegistryKit(_Kit):
    def __init__(self, target: RegistryUnderTest) -> None:
        super().__init__(target.hub_id, target.registry_id, target.pki)
        self.target = target
        self.channel = grpc.secure_channel(
            target.endpoint, channel_credentials(self.tls),
            options=channel_options(target.registry_id),
        )  # fmt: skip
        self.stub = registry_pb2_grpc.RegistryStub(self.channel)
        self.raw = self.channel.unary_unary(  # bytes in, bytes out
            DELIVER, request_serializer=None, response_deserializer=None
        )
        self.transaction_id = f"{target.space}-{uuid.uuid4().int % 10**9}"
        self.serials = (uuid.uuid4().int % 10**12) * 1000 + 1

    # --- messages as the hub sends them ----------------------------------------------------

    def _transaction(self, account: str) -> T.Transaction:
        first = self.serials
        block = units_pb2.UnitBlock(
            serial_first=first, serial_last=first + 99, originating_registry=self.target.space,
            vintage=self.target.vintage, cooperative_approach=self.target.approach,
            first_transferring_party=self.target.space[:3], purpose=units_pb2.PURPOSE_NDC,
            unit_kind=units_pb2.UNIT_KIND_ITMO, state=units_pb2.UNIT_STATE_HELD,
        )  # fmt: skip
        return T.Transaction(
            transaction_id=self.transaction_id, type=T.TRANSACTION_TYPE_EXTERNAL_TRANSFER,
            transferring_registry=self.target.space,
            transferring_account=format_account_id(self.target.space, 1),
            acquiring_registry=self.target.registry_id, acquiring_account=account,
            blocks=[block], quantity=100,
        )  # fmt: skip

    def _deliver(self, message: Message) -> T.Receipt:
        receipt = self._open(self.stub.Deliver(self._seal(message), timeout=10), T.Receipt)
        assert isinstance(receipt, T.Receipt)
        return receipt

    # --- the battery ---------------------------------------------------------------------

    def run(self) -> Battery:
        battery = Battery()
        battery.check(
            "mTLS: a client without a certificate is refused",
            lambda: _anonymous_refused(
                self.target.endpoint, self.tls, self.target.registry_id, DELIVER
            ),
        )
        battery.check("mTLS: the hub's certificate is accepted", lambda: _numbered(self.raw))
        notice = T.StatusNotice(transaction_id="KIT-0", status=T.TRANSACTION_STATUS_COMPLETED)
        for name, test in _envelope_checks(
            lambda **header: self._seal(notice, **header), self.stub.Deliver, self.raw
        ):
            battery.check(name, test)
        battery.check("acquisition into an unknown account is refused: 6 REJECTED", self._reject)
        if battery.check("acquisition into the account under test is accepted", self._accept):
            battery.check("a repeated delivery gets the same receipt", self._replay)
            battery.check("a batch delivery is answered as Deliver answers (optional RPC)",
                          self._batch_replay)  # fmt: skip
            battery.check("a message id reused with other bytes is refused (3001)", self._reuse)
            battery.check("a duplicate completion is applied once", self._complete_once)
            battery.check("a receipt to a status notice names its transaction and status "
                          "(section 10.5)", self._notice_receipt)  # fmt: skip
        if battery.check("reconciliation: snapshot, totals, tree and blocks", self._reconcile):
            battery.check(
                "reconciliation: the root recomputed from the listed blocks is the registry's "
                "(keys, digests, order: section 10.9)",
                self._recompute,
            )
        battery.check("reconciliation: an unknown run is refused (7003)", self._unknown_run)
        if self.target.listen is not None:
            battery.check("a lost completion is recovered by a status query", self._recovery)
        self.channel.close()
        return battery

    # --- status recovery: the kit serves the Hub the registry calls --------------------------

    def _recovery(self) -> str | None:
        """An accepted acquisition whose completion notice never comes: the registry must
        ask the hub (the kit) for its status, and apply the COMPLETED it is told, once."""
        assert self.target.listen is not None
        before = self._units()
        transaction = self._transaction(self.target.account)
        transaction.transaction_id = f"{self.target.space}-{uuid.uuid4().int % 10**9}"
        transaction.blocks[0].serial_first += 500
        transaction.blocks[0].serial_last += 500
        asked = threading.Event()
        server = self._serve_hub(transaction, asked)
        try:
            receipt = self._deliver(T.AcquisitionRequest(transaction=transaction))
            if receipt.status != T.TRANSACTION_STATUS_ACCEPTED:
                return f"the acquisition was not accepted: status {receipt.status}"
            if not asked.wait(self.target.recovery_timeout_seconds):
                return f"no status query within {self.target.recovery_timeout_seconds:.0f} s"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                added = self._units() - before
                if added == 100:
                    return None
                time.sleep(0.5)
            return f"the recovered completion added {added} units, not 100"
        finally:
            server.stop(grace=None)

    def _serve_hub(self, transaction: T.Transaction, asked: threading.Event) -> grpc.Server:
        def status(request: bytes, context: grpc.ServicerContext) -> bytes:
            envelope = envelope_pb2.Envelope.FromString(request)
            query = self._open(envelope, T.StatusQuery)
            assert isinstance(query, T.StatusQuery)
            answer = T.StatusAnswer(in_reply_to=query.header.message_id)
            if query.transaction_id == transaction.transaction_id:
                answer.found = True
                answer.status = T.TRANSACTION_STATUS_COMPLETED
                answer.transaction.CopyFrom(transaction)
                answer.status_at.FromDatetime(datetime.now(UTC))
                asked.set()
            return self._seal(answer).SerializeToString()

        def receipt(request: bytes, context: grpc.ServicerContext) -> bytes:
            envelope = envelope_pb2.Envelope.FromString(request)
            payload = T.Receipt(accepted=True)
            payload.request_payload_sha256 = hashlib.sha256(envelope.payload).digest()
            # Every payload has its header as field 1: read it through any such message.
            payload.in_reply_to = T.StatusQuery.FromString(envelope.payload).header.message_id
            return self._seal(payload).SerializeToString()

        handlers = {
            "GetTransactionStatus": grpc.unary_unary_rpc_method_handler(status),
            "ProposeTransaction": grpc.unary_unary_rpc_method_handler(receipt),
            "NotifyStatus": grpc.unary_unary_rpc_method_handler(receipt),
            "SubmitReconciliation": grpc.unary_unary_rpc_method_handler(receipt),
        }
        server = grpc.server(ThreadPoolExecutor(4))
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("article6.v1.Hub", handlers)]
        )
        server.add_secure_port(self.target.listen or "", server_credentials(self.tls))
        server.start()
        return server

    def _reject(self) -> str | None:
        unknown = format_account_id(self.target.registry_id, 999_999_999)
        offer = T.AcquisitionRequest(transaction=self._transaction(unknown))
        offer.transaction.transaction_id += "R"
        receipt = self._deliver(offer)
        refused = receipt.status == T.TRANSACTION_STATUS_REJECTED and not receipt.accepted
        if not refused or not receipt.results:
            return (
                f"accepted {receipt.accepted}, status {receipt.status} "
                f"with codes {[r.code for r in receipt.results]}"
            )
        return None

    def _accept(self) -> str | None:
        self.offer = self._seal(T.AcquisitionRequest(transaction=self._transaction(
            self.target.account)))  # fmt: skip
        reply = self.stub.Deliver(self.offer, timeout=10)
        self.offer_reply = reply.SerializeToString()
        receipt = self._open(reply, T.Receipt)
        assert isinstance(receipt, T.Receipt)
        if receipt.status != T.TRANSACTION_STATUS_ACCEPTED:
            return f"status {receipt.status}, codes {[r.code for r in receipt.results]}"
        return None

    def _replay(self) -> str | None:
        again = self.stub.Deliver(self.offer, timeout=10).SerializeToString()
        return None if again == self.offer_reply else "the receipt differs"

    def _batch_replay(self) -> str | None:
        try:
            reply = self.stub.DeliverBatch(
                envelope_pb2.EnvelopeBatch(envelopes=[self.offer]), timeout=10
            )
        except grpc.RpcError as error:
            unserved = error.code() is grpc.StatusCode.UNIMPLEMENTED
            return None if unserved else f"DeliverBatch failed: {_describe(error)}"
        return _batch_answers(reply, [self.offer_reply])

    def _reuse(self) -> str | None:
        forged = T.AcquisitionRequest.FromString(self.offer.payload)
        forged.transaction.quantity += 1
        envelope = seal(forged, [self.key])  # same header, same message id, other bytes
        return _refused(lambda: self.stub.Deliver(envelope, timeout=10),
                             Code.MESSAGE_ID_REUSED)  # fmt: skip

    def _units(self) -> int:
        """The kit's units in the registry's books, from a snapshot of its own."""
        run_id = f"KIT-{uuid.uuid4().hex[:12]}"
        receipt = self._deliver(R.ReconciliationRequest(run_id=run_id, fanout=16, depth=2))
        if not receipt.accepted:
            raise AssertionError("the snapshot request was not taken")
        reply = self.stub.GetSnapshotTotals(
            self._seal(R.SnapshotTotalsRequest(run_id=run_id)), timeout=60
        )
        totals = self._open(reply, R.SnapshotTotals)
        assert isinstance(totals, R.SnapshotTotals)
        self._deliver(
            R.ReconciliationResult(run_id=run_id, status=R.RECONCILIATION_STATUS_CONFIRMED)
        )
        return sum(row.unit_count for row in totals.rows
                   if row.cooperative_approach == self.target.approach
                   and row.vintage == self.target.vintage)  # fmt: skip

    def _complete_once(self) -> str | None:
        before = self._units()
        completed = T.StatusNotice(
            transaction_id=self.transaction_id, status=T.TRANSACTION_STATUS_COMPLETED,
            transaction=self._transaction(self.target.account),
        )  # fmt: skip
        for _ in range(2):  # a new message id each time
            receipt = self.notice_receipt = self._deliver(completed)
            if not receipt.accepted:
                return f"a completion notice was not taken: {[r.code for r in receipt.results]}"
        added = self._units() - before
        return None if added == 100 else f"the 100 units were added as {added}"

    def _notice_receipt(self) -> str | None:
        receipt = self.notice_receipt
        said = (receipt.accepted, receipt.transaction_id, receipt.status, len(receipt.results))
        wanted = (True, self.transaction_id, T.TRANSACTION_STATUS_COMPLETED, 0)
        return None if said == wanted else f"(accepted, transaction_id, status, results) {said}"

    def _recompute(self) -> str | None:
        """Build the tree from the listed blocks as section 10.9 says; it must be the one the
        registry answered with, root and children alike."""
        listed = [held_block(message) for message in self.listing.blocks]
        order = [(b.attributes.unit.originating_registry, b.serial_first) for b in listed]
        if order != sorted(order):
            return "the blocks are not listed by (originating registry, serial_first)"
        tree = Tree.build(listed, fanout=4, depth=2)
        if tree.root.digest != self.totals.root.digest:
            return "the root's digest differs from one recomputed from the listed blocks"
        theirs = [(n.digest, n.block_count) for n in self.children.nodes]
        if theirs != [(n.digest, n.block_count) for n in tree.children(0, 0)]:
            return "the root's children differ from those recomputed from the listed blocks"
        return None

    def _reconcile(self) -> str | None:
        run_id = f"KIT-{uuid.uuid4().hex[:12]}"
        self._deliver(R.ReconciliationRequest(run_id=run_id, fanout=4, depth=2))
        asked = self._seal(R.SnapshotTotalsRequest(run_id=run_id))
        totals = self._open(self.stub.GetSnapshotTotals(asked, timeout=60), R.SnapshotTotals)
        assert isinstance(totals, R.SnapshotTotals)
        request = R.HashTreeRequest(run_id=run_id)
        request.parents.add(depth=0, index=0)
        nodes = self._open(self.stub.GetHashTreeNodes(self._seal(request), timeout=60),
                           R.HashTreeNodes)  # fmt: skip
        assert isinstance(nodes, R.HashTreeNodes)
        if (
            len(nodes.nodes) != 4
            or sum(n.block_count for n in nodes.nodes) != totals.root.block_count
        ):
            return "the root's children do not add up to the root"
        listing = R.BlockListRequest(run_id=run_id)
        for index in range(16):
            listing.leaves.add(depth=2, index=index)
        blocks = self._open(self.stub.ListSnapshotBlocks(self._seal(listing), timeout=60),
                            R.BlockListing)  # fmt: skip
        assert isinstance(blocks, R.BlockListing)
        self._deliver(
            R.ReconciliationResult(run_id=run_id, status=R.RECONCILIATION_STATUS_CONFIRMED)
        )
        self.totals, self.children, self.listing = totals, nodes, blocks
        counted = sum(row.block_count for row in totals.rows)
        if len(blocks.blocks) != counted or counted != totals.root.block_count:
            return f"{len(blocks.blocks)} blocks listed, {counted} in the totals"
        return None

    def _unknown_run(self) -> str | None:
        request = R.SnapshotTotalsRequest(run_id="KIT-no-such-run")
        return _refused(lambda: self.stub.GetSnapshotTotals(self._seal(request), timeout=10),
                             Code.RECONCILIATION_RUN_UNKNOWN)  # fmt: skip


# --- the mirror battery: play a registry against a hub ----------------------------------------


@dataclass
class HubUnderTest:
    """Where the hub is, and the registry the kit plays (its credentials from the PKI; the
    registry must be in the hub's directory, allowed to issue under ``approach``)."""

    endpoint: str
    registry_id: str
    pki: Path
    hub_id: str = "HUB"
    approach: str = "CA0001"
    vintage: int = 2024


class HubKit(_Kit):
    def __init__(self, target: HubUnderTest) -> None:
        super().__init__(target.registry_id, target.hub_id, target.pki)
        self.target = target
        self.channel = grpc.secure_channel(
            target.endpoint, channel_credentials(self.tls), options=channel_options(target.hub_id)
        )
        self.stub = hub_pb2_grpc.HubStub(self.channel)
        self.raw = self.channel.unary_unary(
            PROPOSE, request_serializer=None, response_deserializer=None
        )
        self.base = uuid.uuid4().int % 10**9 * 1000  # transaction numbers no one else uses
        self.account = format_account_id(target.registry_id, 1)

    def _issuance(
        self, number: int, quantity: int | None = None, itmos: bool = False
    ) -> T.Transaction:
        """Mitigation outcomes, issued unauthorized (or, ``itmos``, ITMOs minted outright,
        which the hub must refuse: they come into being only by first transfer)."""
        first = (self.base + number) * 1000 + 1
        block = units_pb2.UnitBlock(
            serial_first=first, serial_last=first + 99,
            originating_registry=self.target.registry_id, vintage=self.target.vintage,
            unit_kind=units_pb2.UNIT_KIND_MITIGATION_OUTCOME, state=units_pb2.UNIT_STATE_HELD,
        )  # fmt: skip
        if itmos:
            block.cooperative_approach = self.target.approach
            block.first_transferring_party = self.target.registry_id[:3]
            block.purpose = units_pb2.PURPOSE_NDC
            block.unit_kind = units_pb2.UNIT_KIND_ITMO
        return T.Transaction(
            transaction_id=f"{self.target.registry_id}-{self.base + number}",
            type=T.TRANSACTION_TYPE_ISSUANCE, transferring_registry=self.target.registry_id,
            acquiring_registry=self.target.registry_id, acquiring_account=self.account,
            blocks=[block], quantity=100 if quantity is None else quantity,
        )  # fmt: skip

    def _propose(self, envelope: envelope_pb2.Envelope) -> tuple[bytes, T.Receipt]:
        reply = self.stub.ProposeTransaction(envelope, timeout=10)
        receipt = self._open(reply, T.Receipt)
        assert isinstance(receipt, T.Receipt)
        return reply.SerializeToString(), receipt

    def _status(self, transaction_id: str) -> T.StatusAnswer:
        query = self._seal(T.StatusQuery(transaction_id=transaction_id))
        answer = self._open(self.stub.GetTransactionStatus(query, timeout=10), T.StatusAnswer)
        assert isinstance(answer, T.StatusAnswer)
        return answer

    def run(self) -> Battery:
        battery = Battery()
        battery.check(
            "mTLS: a client without a certificate is refused",
            lambda: _anonymous_refused(self.target.endpoint, self.tls, self.target.hub_id, PROPOSE),
        )
        battery.check("mTLS: the registry's certificate is accepted", lambda: _numbered(self.raw))
        proposal = T.TransactionProposal(transaction=self._issuance(0))
        for name, test in _envelope_checks(
            lambda **kw: self._seal(T.TransactionProposal(transaction=self._issuance(0)), **kw),
            self.stub.ProposeTransaction,
            self.raw,
        ):
            battery.check(name, test)
        self.proposal = self._seal(proposal)
        if battery.check("an issuance is completed at once", self._issue):
            battery.check("a repeated proposal gets the same receipt", self._replay)
            battery.check("a batch is answered envelope by envelope", self._batch)
            battery.check("a message id reused with other bytes is refused (3001)", self._reuse)
            battery.check("the status of the issuance is answered", self._status_known)
            battery.check("a leg confirmation of the issuance matches the ledger, its "
                          "account_type not compared (section 10.9)", self._confirm)  # fmt: skip
        battery.check("an unknown transaction is not found", self._status_unknown)
        battery.check(
            "a malformed proposal is answered 3 with its code (2004), then terminated (5)",
            self._malformed,
        )
        battery.check("ITMOs minted by issuance are refused (5022)", self._minted)
        battery.check("mitigation outcomes issued with an approach are refused (5013)",
                      self._bound)  # fmt: skip
        self.channel.close()
        return battery

    def _minted(self) -> str | None:
        _, receipt = self._propose(self._seal(T.TransactionProposal(
            transaction=self._issuance(3, itmos=True))))  # fmt: skip
        codes = [r.code for r in receipt.results]
        if receipt.status != T.TRANSACTION_STATUS_CHECKED_DISCREPANCY or codes != [
            Code.ITMO_ISSUANCE_NOT_FIRST_TRANSFER
        ]:
            return f"status {receipt.status}, codes {codes}"
        return None

    def _bound(self) -> str | None:
        issued = self._issuance(4)
        issued.blocks[0].cooperative_approach = self.target.approach
        _, receipt = self._propose(self._seal(T.TransactionProposal(transaction=issued)))
        codes = [r.code for r in receipt.results]
        if receipt.status != T.TRANSACTION_STATUS_CHECKED_DISCREPANCY or codes != [
            Code.UNITS_ALREADY_AUTHORIZED
        ]:
            return f"status {receipt.status}, codes {codes}"
        return None

    def _issue(self) -> str | None:
        self.reply, receipt = self._propose(self.proposal)
        if receipt.status != T.TRANSACTION_STATUS_COMPLETED:
            return f"status {receipt.status}, codes {[r.code for r in receipt.results]}"
        return None

    def _replay(self) -> str | None:
        again, _ = self._propose(self.proposal)
        return None if again == self.reply else "the receipt differs"

    def _reuse(self) -> str | None:
        forged = T.TransactionProposal.FromString(self.proposal.payload)
        forged.transaction.transaction_id = f"{self.target.registry_id}-{self.base + 1}"
        envelope = seal(forged, [self.key])
        return _refused(lambda: self.stub.ProposeTransaction(envelope, timeout=10),
                        Code.MESSAGE_ID_REUSED)  # fmt: skip

    def _batch(self) -> str | None:
        """The recorded proposal again, and one signed by nobody the hub knows (1024)."""
        stranger = self._seal(T.TransactionProposal(transaction=self._issuance(3)),
                              key=SigningKey.generate())  # fmt: skip
        batch = envelope_pb2.EnvelopeBatch(envelopes=[self.proposal, stranger])
        reply = self.stub.SubmitBatch(batch, timeout=10)
        return _batch_answers(reply, [self.reply, Code.KEY_UNKNOWN])

    def _status_known(self) -> str | None:
        answer = self._status(self._issuance(0).transaction_id)
        if not answer.found or answer.status != T.TRANSACTION_STATUS_COMPLETED:
            return f"found {answer.found}, status {answer.status}"
        return None

    def _status_unknown(self) -> str | None:
        answer = self._status(f"{self.target.registry_id}-{self.base + 999}")
        return "found" if answer.found else None

    def _malformed(self) -> str | None:
        wrong = self._issuance(2, quantity=101)
        _, receipt = self._propose(self._seal(T.TransactionProposal(transaction=wrong)))
        codes = [r.code for r in receipt.results]
        if receipt.status != T.TRANSACTION_STATUS_CHECKED_DISCREPANCY or codes != [
            Code.QUANTITY_MISMATCH
        ]:
            return f"status {receipt.status}, codes {codes}"
        answer = self._status(wrong.transaction_id)  # the refusal ends terminated (DES 3, 5)
        if answer.status != T.TRANSACTION_STATUS_TERMINATED:
            return f"answered {receipt.status}, then status {answer.status}"
        return None

    def _confirm(self) -> str | None:
        issued = self._issuance(0)
        confirmation = R.LegConfirmation(transaction_id=issued.transaction_id)
        confirmation.blocks.add(  # account_type is not compared (section 10.9): any will do
            block=issued.blocks[0], registry=self.target.registry_id, account_id=self.account,
            account_type=units_pb2.ACCOUNT_TYPE_HOLDING,
        )  # fmt: skip
        reply = self.stub.SubmitReconciliation(self._seal(confirmation), timeout=10)
        receipt = self._open(reply, T.Receipt)
        assert isinstance(receipt, T.Receipt)
        codes = [r.code for r in receipt.results]
        return None if not codes else f"codes {codes}"


def _batch_answers(reply: envelope_pb2.BatchReply, expected: list[bytes | Code]) -> str | None:
    """Whether each answer is the expected reply (its bytes) or refusal (its code)."""
    if len(reply.answers) != len(expected):
        return f"{len(reply.answers)} answers to {len(expected)} envelopes"
    for index, (answer, wanted) in enumerate(zip(reply.answers, expected, strict=True)):
        if isinstance(wanted, bytes):
            if answer.reply.SerializeToString() != wanted:
                return f"answer {index} is not the stored reply"
            continue
        failure = Failure.of_status(answer.status) if answer.HasField("status") else None
        code = failure.refusal.code if failure and failure.refusal else None
        if code is not wanted:
            return f"answer {index}: {failure or 'a reply'}, not {wanted.value}"
    return None


def _anonymous_refused(endpoint: str, tls: TlsMaterial, peer: str, method: str) -> str | None:
    """A client without a certificate must not get past the TLS handshake."""
    anonymous = grpc.ssl_channel_credentials(root_certificates=tls.ca_certificate)
    with grpc.secure_channel(endpoint, anonymous, options=channel_options(peer)) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            call(b"", timeout=5)
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.UNAVAILABLE:
                return None  # the handshake failed
            return f"the call reached the service: {_describe(error)}"
    return "an anonymous client was served"


def _numbered(raw: Callable[..., object]) -> str | None:
    """An empty envelope reaches the service and is refused with a numbered code."""
    try:
        raw(b"", timeout=10)
    except grpc.RpcError as error:
        return None if refusal_from_error(error) else f"no numbered code: {_describe(error)}"
    return "an empty envelope was taken"


def _refused(call: Callable[[], object], code: Code) -> str | None:
    try:
        call()
    except grpc.RpcError as error:
        refusal = refusal_from_error(error)
        found = refusal.code if refusal else None
        return None if found is code else f"expected {code.value}, got {_describe(error)}"
    return f"accepted; expected refusal {code.value}"


def _envelope_checks(
    sealed: Callable[..., envelope_pb2.Envelope],
    call: Callable[..., object],
    raw: Callable[..., object],
) -> list[tuple[str, Callable[[], str | None]]]:
    """Each kind of bad envelope, refused with its code; ``sealed(**header)`` makes a fresh
    valid envelope (``key``, ``recipient``, ``now`` may be changed)."""

    def bad_signature() -> str | None:
        envelope = sealed()
        envelope.signatures[0].sig = bytes(64)
        return _refused(lambda: call(envelope, timeout=10), Code.SIGNATURE_INVALID)

    def unknown_key() -> str | None:
        envelope = sealed(key=SigningKey.generate())
        return _refused(lambda: call(envelope, timeout=10), Code.KEY_UNKNOWN)

    def other_recipient() -> str | None:
        envelope = sealed(recipient="ZZZ99")
        return _refused(lambda: call(envelope, timeout=10), Code.RECIPIENT_WRONG)

    def stale() -> str | None:
        envelope = sealed(now=datetime.now(UTC) - timedelta(seconds=900))
        return _refused(lambda: call(envelope, timeout=10), Code.CLOCK_SKEW)

    return [
        ("malformed bytes are refused (1010)",
         lambda: _refused(lambda: raw(b"\xff\x00garbage", timeout=10), Code.ENVELOPE_MALFORMED)),
        ("a bad signature is refused (1023)", bad_signature),
        ("an unknown key is refused (1024)", unknown_key),
        ("a message for another recipient is refused (1034)", other_recipient),
        ("a stale message is refused (1036)", stale),
    ]  # fmt: skip
