"""The hub's Hub service in process, on a real database, fed one input at a time.

An input goes the way a request does after gRPC has handed over its bytes: the rate limit is
not set, the envelope is read (size, then bytes), and the RPC's method opens, checks and
applies it. A ``Refusal`` is the numbered answer to a bad input; any other exception is a
crash. Between inputs the target can fingerprint the database, so the fuzzer can prove that
refused inputs changed nothing and rejected ones left the ledger alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Connection, func, select

from article6.codes import Code, Refusal
from article6.envelope import read_envelope, seal
from article6.headers import new_header
from article6.identifiers import format_account_id
from article6.keys import DirectoryKey, KeyDirectory, SigningKey
from article6.v1 import envelope_pb2, reconciliation_pb2, transaction_pb2, units_pb2
from gateway.checks import Peer
from gateway.hub_service import HubService
from gateway.lifecycle import Lifecycle
from gateway.mailer import Mailer
from gateway.storage.database import Database
from gateway.storage.schema import (
    audit_log,
    authorizations,
    discrepancies,
    inbox,
    ledger_blocks,
    locks,
    outbox,
    transactions,
)

T = transaction_pb2
GHA_ACCOUNT = format_account_id("GHA01", 1001)
CHE_ACCOUNT = format_account_id("CHE01", 1001)
Method = Callable[[envelope_pb2.Envelope, Any], Awaitable[envelope_pb2.Envelope]]


class Caller:
    """What the service reads of a gRPC context: the caller's verified TLS identity."""

    def __init__(self, identity: str) -> None:
        self._auth = {"x509_common_name": [identity.encode()]}

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


@dataclass(frozen=True)
class Answer:
    code: Code | None  # the refusal's code, or None when a receipt came back
    receipt: T.Receipt | None
    accepted: bool


# GHA01's ITMOs come into being by their issuance, the first transfer this authorization
# defines (for OIMP; it also covers use towards an NDC).
AUTHORIZATION = T.Authorization(
    authorization_id="GHA-FUZZ-1", authorizing_party="GHA", cooperative_approach="CA0001",
    purpose=units_pb2.PURPOSE_NDC_AND_OIMP, vintage_first=2021, vintage_last=2030,
    first_transfer_definition=T.FIRST_TRANSFER_TRIGGER_ISSUANCE, version=1,
)  # fmt: skip


def _block(first: int, last: int) -> units_pb2.UnitBlock:
    return units_pb2.UnitBlock(
        serial_first=first, serial_last=last, originating_registry="GHA01", vintage=2024,
        cooperative_approach="CA0001", first_transferring_party="GHA",
        authorization_id=AUTHORIZATION.authorization_id, purpose=AUTHORIZATION.purpose,
        unit_kind=units_pb2.UNIT_KIND_ITMO, state=units_pb2.UNIT_STATE_HELD,
    )  # fmt: skip


class HubTarget:
    def __init__(self, url: str) -> None:
        self.hub_key = SigningKey.generate()
        self.keys = {registry: SigningKey.generate() for registry in ("GHA01", "CHE01")}
        since = datetime.now(UTC) - timedelta(days=1)
        self.directory = KeyDirectory(
            DirectoryKey(registry, key.public_raw, since)
            for registry, key in {"HUB": self.hub_key, **self.keys}.items()
        )
        self.database = Database(url, signer=self.hub_key)
        self.database.migrate()
        mailer = Mailer("HUB", self.hub_key)
        peers = {
            registry: Peer(registry, frozenset({"CA0001"}), False, party=registry[:3])
            for registry in self.keys
        }
        self.service = HubService(
            "HUB", self.directory, self.database, Lifecycle(mailer, timedelta(hours=1)),
            mailer, lambda: peers,
        )  # fmt: skip
        self.methods: dict[str, Method] = self.service.rpcs()
        self.number = 100

    async def prepare(self) -> None:
        """GHA01 holds 1..10^6 (authorized by GHA01-0), and GHA01-2 (1..100 to CHE01) waits
        for CHE01's answer."""
        authorization = T.TransactionProposal(
            header=self._header("GHA01"),
            transaction=T.Transaction(
                transaction_id="GHA01-0", type=T.TRANSACTION_TYPE_AUTHORIZATION,
                transferring_registry="GHA01", acquiring_registry="GHA01",
                authorization=AUTHORIZATION,
            ),
        )  # fmt: skip
        issuance = self._proposal(T.TRANSACTION_TYPE_ISSUANCE, 1, 10**6, "GHA01-1")
        transfer = self._proposal(T.TRANSACTION_TYPE_EXTERNAL_TRANSFER, 1, 100, "GHA01-2")
        for message in (authorization, issuance, transfer):
            raw = seal(message, [self.keys["GHA01"]]).SerializeToString()
            answer = await self.feed("ProposeTransaction", raw, "GHA01")
            assert answer.accepted, answer

    # --- seeds: valid messages of every kind the Hub service takes ----------------------------

    SEEDS = 6
    KINDS = (T.TRANSACTION_TYPE_EXTERNAL_TRANSFER, T.TRANSACTION_TYPE_CANCELLATION,
             T.TRANSACTION_TYPE_ISSUANCE)  # fmt: skip

    def seed(self, index: int) -> tuple[str, str, Message]:
        """(RPC, sender, message): the ``index``-th kind of valid request (of ``SEEDS``), new:
        a fresh header, and for proposals a fresh transaction id and serials."""
        if index < len(self.KINDS):
            self.number += 1
            kind = self.KINDS[index]
            first = 1000 + self.number * 10 + 2_000_000 * (kind == T.TRANSACTION_TYPE_ISSUANCE)
            transaction_id = f"GHA01-{self.number}"
            return (
                "ProposeTransaction",
                "GHA01",
                self._proposal(kind, first, first + 5, transaction_id),
            )
        if index == 3:
            notice = T.StatusNotice(
                header=self._header("CHE01"), transaction_id="GHA01-2",
                status=T.TRANSACTION_STATUS_ACCEPTED,
            )  # fmt: skip
            return "NotifyStatus", "CHE01", notice
        if index == 4:
            query = T.StatusQuery(header=self._header("GHA01"), transaction_id="GHA01-1")
            return "GetTransactionStatus", "GHA01", query
        confirmation = reconciliation_pb2.LegConfirmation(
            header=self._header("GHA01"), transaction_id="GHA01-1",
            blocks=[units_pb2.HeldBlock(block=_block(1, 10**6), registry="GHA01",
                                        account_id=GHA_ACCOUNT)],
        )  # fmt: skip
        return "SubmitReconciliation", "GHA01", confirmation

    def _header(self, sender: str) -> Any:
        return new_header(sender, "HUB", datetime.now(UTC), str(uuid.uuid4()))

    def _proposal(self, kind: int, first: int, last: int, transaction_id: str) -> Message:
        external = kind == T.TRANSACTION_TYPE_EXTERNAL_TRANSFER
        transaction = T.Transaction(
            transaction_id=transaction_id, type=kind,  # type: ignore[arg-type]
            transferring_registry="GHA01",
            transferring_account="" if kind == T.TRANSACTION_TYPE_ISSUANCE else GHA_ACCOUNT,
            acquiring_registry="CHE01" if external else "GHA01",
            acquiring_account=CHE_ACCOUNT if external else (
                GHA_ACCOUNT if kind == T.TRANSACTION_TYPE_ISSUANCE else ""),
            blocks=[_block(first, last)], quantity=last - first + 1,
        )  # fmt: skip
        if kind == T.TRANSACTION_TYPE_ISSUANCE:
            transaction.first_transfer.first_transferring_party = "GHA"
            transaction.first_transfer.trigger = T.FIRST_TRANSFER_TRIGGER_ISSUANCE
        return T.TransactionProposal(header=self._header("GHA01"), transaction=transaction)

    # --- feeding ------------------------------------------------------------------------------

    async def feed(self, rpc: str, raw: bytes, identity: str) -> Answer:
        """One request's bytes to one RPC, as the caller ``identity``; raises only on a crash."""
        try:
            envelope = read_envelope(raw)
            reply = await self.methods[rpc](envelope, Caller(identity))
        except Refusal as refusal:
            return Answer(refusal.code, None, False)
        payload = transaction_pb2.Receipt()
        if reply.payload_type == "article6.v1.Receipt":
            payload.ParseFromString(reply.payload)
            return Answer(None, payload, payload.accepted)
        return Answer(None, None, False)  # a status answer: reads only

    def fingerprint(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(the ledger and its locks, everything else): counts and sums, cheap to take."""

        def read(connection: Connection) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
            def row(table: Any, *sums: Any) -> tuple[Any, ...]:
                # Serials fill BIGINT, so sum residues (a sum of serials would overflow).
                columns = [func.count(), *(func.coalesce(func.sum(c % 1_000_003), 0) for c in sums)]
                return tuple(connection.execute(select(*columns).select_from(table)).one())

            ledger = (
                row(ledger_blocks, ledger_blocks.c.serial_first, ledger_blocks.c.serial_last,
                    ledger_blocks.c.state),
                row(locks, locks.c.serial_first, locks.c.serial_last),
                row(authorizations, authorizations.c.reserved),
            )  # fmt: skip
            rest = tuple(row(t) for t in (transactions, inbox, outbox, discrepancies, audit_log))
            return ledger, rest

        return self.database.read_now(read)

    def close(self) -> None:
        self.database.close()
