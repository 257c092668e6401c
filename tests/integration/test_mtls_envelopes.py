"""The protocol library over real gRPC on loopback with mutual TLS.

A minimal front door serves ``article6.v1.Hub/ProposeTransaction`` with the library's pieces
(raw-bytes handler, envelope opening, TLS identity, refusal statuses) and answers with a
hub-signed receipt. Each test is a real TLS handshake and RPC.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import grpc.aio
import pytest

from article6.codes import Code
from article6.envelope import open_envelope, payload_sha256, seal
from article6.headers import check_fresh, new_header
from article6.keys import KeyDirectory, SigningKey, read_key_file
from article6.pki import RegistryFiles
from article6.service import INTERNAL_DETAIL, Context, envelope_service, grpc_message_options
from article6.status import refusal_from_error
from article6.tls import (
    TlsMaterial,
    channel_options,
    peer_identity,
    secure_channel,
    server_credentials,
)
from article6.v1 import envelope_pb2, hub_pb2_grpc, transaction_pb2
from article6.vectors import example_proposal

PROPOSE = "/article6.v1.Hub/ProposeTransaction"
MAX_BYTES = 64 * 1024


def signing_key(pki: Path, registry: str) -> SigningKey:
    return SigningKey.from_pem(RegistryFiles(pki, registry).signing_key.read_bytes())


@dataclass
class FrontDoor:
    """Authenticates proposals and answers each with a signed receipt."""

    directory: KeyDirectory
    key: SigningKey
    served: int = 0
    fault: Exception | None = None  # raised by the next call, as a bug of ours would be

    async def propose(
        self, envelope: envelope_pb2.Envelope, context: Context
    ) -> envelope_pb2.Envelope:
        if self.fault is not None:
            fault, self.fault = self.fault, None
            raise fault
        now = datetime.now(UTC)
        opened = open_envelope(
            envelope,
            accepted={"article6.v1.TransactionProposal": transaction_pb2.TransactionProposal},
            directory=self.directory,
            recipient="HUB",
            peer_identity=peer_identity(context) or "",
            now=now,
        )
        check_fresh(opened.header, now)
        self.served += 1
        receipt = transaction_pb2.Receipt(
            header=new_header("HUB", opened.signer, now),
            in_reply_to=opened.header.message_id,
            request_payload_sha256=payload_sha256(envelope),
            accepted=True,
            transaction_id="GHA01-1",
            status=transaction_pb2.TRANSACTION_STATUS_CHECKED,
        )
        return seal(receipt, [self.key])


@asynccontextmanager
async def front_door(pki: Path) -> AsyncIterator[tuple[FrontDoor, str]]:
    door = FrontDoor(read_key_file(pki / "keys.toml"), signing_key(pki, "HUB"))
    server = grpc.aio.server(options=grpc_message_options(MAX_BYTES))
    server.add_generic_rpc_handlers(
        [envelope_service("article6.v1.Hub", {"ProposeTransaction": door.propose}, MAX_BYTES)]
    )
    tls = TlsMaterial.load(RegistryFiles(pki, "HUB"))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(tls))
    await server.start()
    try:
        yield door, f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), timeout=60))


def fresh_proposal(
    sender: str = "GHA01", sent_at: datetime | None = None
) -> transaction_pb2.TransactionProposal:
    message = example_proposal()
    message.header.CopyFrom(new_header(sender, "HUB", sent_at or datetime.now(UTC)))
    return message


async def propose(
    target: str, tls: TlsMaterial, envelope: envelope_pb2.Envelope
) -> envelope_pb2.Envelope:
    async with secure_channel(target, "HUB", tls) as channel:
        reply: envelope_pb2.Envelope = await hub_pb2_grpc.HubStub(channel).ProposeTransaction(
            envelope, timeout=10
        )
        return reply


async def refused_with(call: Awaitable[object]) -> tuple[grpc.StatusCode, Code | None]:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    refusal = refusal_from_error(error.value)
    return error.value.code(), refusal.code if refusal else None


def test_a_signed_proposal_gets_a_hub_signed_receipt_bound_to_it(pki: Path) -> None:
    async def body() -> None:
        async with front_door(pki) as (door, target):
            request = seal(fresh_proposal(), [signing_key(pki, "GHA01")])
            reply = await propose(target, TlsMaterial.load(RegistryFiles(pki, "GHA01")), request)
            receipt = open_envelope(
                reply,
                accepted={"article6.v1.Receipt": transaction_pb2.Receipt},
                directory=read_key_file(pki / "keys.toml"),
                recipient="GHA01",
                peer_identity="HUB",
                now=datetime.now(UTC),
            ).payload
            assert isinstance(receipt, transaction_pb2.Receipt)
            assert receipt.accepted
            assert receipt.request_payload_sha256 == payload_sha256(request)
            assert door.served == 1

    run(body)


def test_a_registry_certificate_carrying_another_registrys_message_is_denied(pki: Path) -> None:
    async def body() -> None:
        async with front_door(pki) as (door, target):
            forged = seal(fresh_proposal(sender="CHE01"), [signing_key(pki, "CHE01")])
            gha01_tls = TlsMaterial.load(RegistryFiles(pki, "GHA01"))
            status, code = await refused_with(propose(target, gha01_tls, forged))
            assert (status, code) == (
                grpc.StatusCode.PERMISSION_DENIED,
                Code.CERTIFICATE_IDENTITY_MISMATCH,
            )
            assert door.served == 0

    run(body)


def test_malformed_and_oversized_bytes_are_refused_with_their_codes(pki: Path) -> None:
    async def body() -> None:
        async with front_door(pki) as (door, target):
            tls = TlsMaterial.load(RegistryFiles(pki, "GHA01"))
            async with secure_channel(target, "HUB", tls) as channel:
                raw_call = channel.unary_unary(
                    PROPOSE, request_serializer=None, response_deserializer=None
                )
                status, code = await refused_with(raw_call(b"\x0a\xff\xff\xff", timeout=10))
                assert (status, code) == (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    Code.ENVELOPE_MALFORMED,
                )
                # Just over the limit, and well over it (three times): the same numbered code.
                for extra in (MAX_BYTES, 3 * MAX_BYTES):
                    oversized = seal(fresh_proposal(), [signing_key(pki, "GHA01")])
                    oversized.payload += b"\x00" * extra
                    status, code = await refused_with(
                        raw_call(oversized.SerializeToString(), timeout=10)
                    )
                    assert (status, code) == (
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        Code.MESSAGE_TOO_LARGE,
                    )
            assert door.served == 0

    run(body)


def test_a_stale_message_is_refused_and_the_server_keeps_serving(pki: Path) -> None:
    async def body() -> None:
        async with front_door(pki) as (door, target):
            tls = TlsMaterial.load(RegistryFiles(pki, "GHA01"))
            stale = fresh_proposal(sent_at=datetime.now(UTC) - timedelta(seconds=400))
            status, code = await refused_with(
                propose(target, tls, seal(stale, [signing_key(pki, "GHA01")]))
            )
            assert (status, code) == (grpc.StatusCode.INVALID_ARGUMENT, Code.CLOCK_SKEW)
            await propose(target, tls, seal(fresh_proposal(), [signing_key(pki, "GHA01")]))
            assert door.served == 1

    run(body)


def test_a_fault_of_ours_is_internal_without_its_text_and_the_server_keeps_serving(
    pki: Path,
) -> None:
    async def body() -> None:
        async with front_door(pki) as (door, target):
            tls = TlsMaterial.load(RegistryFiles(pki, "GHA01"))
            key = signing_key(pki, "GHA01")
            door.fault = RuntimeError("SELECT response FROM inbox WHERE sender = 'GHA01' " * 500)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await propose(target, tls, seal(fresh_proposal(), [key]))
            assert error.value.code() is grpc.StatusCode.INTERNAL
            assert error.value.details() == INTERNAL_DETAIL  # no SQL, however long, leaves
            await propose(target, tls, seal(fresh_proposal(), [key]))
            assert door.served == 1

    run(body)


def test_a_certificate_from_another_ca_fails_the_handshake(pki: Path, rogue_pki: Path) -> None:
    async def body() -> None:
        async with front_door(pki) as (door, target):
            # Trusts the real CA (so the server checks out) but presents the rogue certificate.
            rogue = RegistryFiles(rogue_pki, "GHA01")
            tls = TlsMaterial(
                (pki / "ca.crt").read_bytes(),
                rogue.tls_certificate.read_bytes(),
                rogue.tls_key.read_bytes(),
            )
            request = seal(fresh_proposal(), [signing_key(pki, "GHA01")])
            status, code = await refused_with(propose(target, tls, request))
            assert status is grpc.StatusCode.UNAVAILABLE
            assert code is None
            good = TlsMaterial.load(RegistryFiles(pki, "GHA01"))
            await propose(target, good, request)
            assert door.served == 1

    run(body)


def test_a_client_without_a_certificate_fails_the_handshake(pki: Path) -> None:
    async def body() -> None:
        async with front_door(pki) as (door, target):
            credentials = grpc.ssl_channel_credentials(
                root_certificates=(pki / "ca.crt").read_bytes()
            )
            async with grpc.aio.secure_channel(
                target, credentials, options=channel_options("HUB")
            ) as channel:
                request = seal(fresh_proposal(), [signing_key(pki, "GHA01")])
                status, _ = await refused_with(
                    hub_pb2_grpc.HubStub(channel).ProposeTransaction(request, timeout=10)
                )
            assert status is grpc.StatusCode.UNAVAILABLE
            assert door.served == 0

    run(body)


def test_a_server_with_another_identity_is_not_trusted(pki: Path) -> None:
    async def body() -> None:
        async with front_door(pki) as (door, target):
            tls = TlsMaterial.load(RegistryFiles(pki, "GHA01"))
            async with secure_channel(target, "CHE01", tls) as channel:  # expects CHE01
                request = seal(fresh_proposal(), [signing_key(pki, "GHA01")])
                status, _ = await refused_with(
                    hub_pb2_grpc.HubStub(channel).ProposeTransaction(request, timeout=10)
                )
            assert status is grpc.StatusCode.UNAVAILABLE
            assert door.served == 0

    run(body)
