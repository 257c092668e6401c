"""A registry's fast sender for the benchmarks: proposals built, signed and sent straight to
the hub over the registry's own mutual TLS, many in flight on one channel.

It stands in for the registry's outbox so that the figure is the hub's, not the reference
registry's sender's. Like that outbox it sends what is waiting together, through
``Hub.SubmitBatch``: a proposal made while earlier batches are in flight waits for the next.
The registry process still runs and receives the hub's status notices for these
transactions, so its books follow, as they would for its own proposals.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from article6.envelope import seal
from article6.headers import new_header
from article6.keys import SigningKey
from article6.limits import MAX_BATCH_ENVELOPES
from article6.pki import RegistryFiles
from article6.service import grpc_message_options
from article6.tls import TlsMaterial, secure_channel
from article6.v1 import envelope_pb2, transaction_pb2, units_pb2

T = transaction_pb2
SUBMIT_BATCH = "/article6.v1.Hub/SubmitBatch"
IN_FLIGHT = 2  # batches at once: one being answered while the next fills
FIRST_NUMBER = 1_000_000_000  # transaction numbers well above those the registry hands out


@dataclass(frozen=True)
class Units:
    """A run of serials in one registry's serial space, as the benchmark issues them."""

    registry: str
    party: str
    account: str

    authorization_id: str  # the registry's standing authorization: ITMOs at issuance

    def block(self, first: int, last: int) -> units_pb2.UnitBlock:
        return units_pb2.UnitBlock(
            serial_first=first, serial_last=last, originating_registry=self.registry,
            vintage=2024, cooperative_approach="CA0001", first_transferring_party=self.party,
            authorization_id=self.authorization_id, purpose=units_pb2.PURPOSE_NDC_AND_OIMP,
            unit_kind=units_pb2.UNIT_KIND_ITMO, state=units_pb2.UNIT_STATE_HELD,
        )  # fmt: skip


class Sender:
    def __init__(self, pki: Path, registry: str, hub: str, endpoint: str) -> None:
        files = RegistryFiles(pki, registry)
        self.registry, self.hub = registry, hub
        self.key = SigningKey.from_pem(files.signing_key.read_bytes())
        self.channel = secure_channel(
            endpoint, hub, TlsMaterial.load(files), grpc_message_options()
        )
        self._batch = self.channel.unary_unary(
            SUBMIT_BATCH, None, envelope_pb2.BatchReply.FromString
        )
        self.number = FIRST_NUMBER
        self._waiting: list[tuple[bytes, asyncio.Future[envelope_pb2.BatchAnswer]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def proposal(
        self,
        kind: T.TransactionType.ValueType,
        units: Units,
        blocks: list[units_pb2.UnitBlock],
        acquiring: tuple[str, str] | None = None,
    ) -> bytes:
        """A signed proposal's bytes: an issuance into ``units.account``, a cancellation from
        it, or (with ``acquiring``, a registry and account) an external transfer."""
        self.number += 1
        registry, account = acquiring or (self.registry, "")
        transaction = T.Transaction(
            transaction_id=f"{self.registry}-{self.number}", type=kind,
            transferring_registry=self.registry,
            transferring_account="" if kind == T.TRANSACTION_TYPE_ISSUANCE else units.account,
            acquiring_registry=registry,
            acquiring_account=units.account if kind == T.TRANSACTION_TYPE_ISSUANCE else account,
            blocks=blocks, quantity=sum(b.serial_last - b.serial_first + 1 for b in blocks),
        )  # fmt: skip
        if kind == T.TRANSACTION_TYPE_ISSUANCE:  # the first transfer the authorization defines
            transaction.first_transfer.first_transferring_party = units.party
            transaction.first_transfer.trigger = T.FIRST_TRANSFER_TRIGGER_ISSUANCE
        header = new_header(self.registry, self.hub, datetime.now(UTC), str(uuid.uuid4()))
        message = T.TransactionProposal(header=header, transaction=transaction)
        return seal(message, [self.key]).SerializeToString()

    async def propose(self, raw: bytes) -> T.Receipt:
        """Send one proposal (with whatever else is waiting); its receipt, which must say
        accepted."""
        answer: asyncio.Future[envelope_pb2.BatchAnswer] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append((raw, answer))
        self._flush()
        reply = await answer
        if not reply.HasField("reply"):
            raise RuntimeError(f"proposal refused: {reply.status!r}")
        receipt = T.Receipt.FromString(reply.reply.payload)
        if not receipt.accepted:
            raise RuntimeError(f"proposal refused: {list(receipt.results)}")
        return receipt

    def _flush(self) -> None:
        while self._waiting and self._in_flight < IN_FLIGHT:
            taken = self._waiting[:MAX_BATCH_ENVELOPES]
            del self._waiting[:MAX_BATCH_ENVELOPES]
            self._in_flight += 1
            task = asyncio.create_task(self._send(taken))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(
        self, taken: list[tuple[bytes, asyncio.Future[envelope_pb2.BatchAnswer]]]
    ) -> None:
        envelopes = [envelope_pb2.Envelope.FromString(raw) for raw, _ in taken]
        request = envelope_pb2.EnvelopeBatch(envelopes=envelopes).SerializeToString()
        try:
            reply = await self._batch(request, timeout=60)
            for (_, answer), result in zip(taken, reply.answers, strict=True):
                answer.set_result(result)
        except Exception as error:  # every waiting proposal hears of it
            for _, answer in taken:
                if not answer.done():
                    answer.set_exception(error)
        finally:
            self._in_flight -= 1
            self._flush()

    async def close(self) -> None:
        await self.channel.close(grace=None)
