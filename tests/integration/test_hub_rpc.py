"""The hub's gRPC service, in process, over loopback with mutual TLS and real SQLite."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from article6.codes import Code
from article6.envelope import open_envelope, seal
from article6.headers import new_header
from article6.keys import SigningKey, read_key_file
from article6.pki import RegistryFiles
from article6.ratelimit import Limit
from article6.status import refusal_from_error
from article6.tls import TlsMaterial, secure_channel
from article6.v1 import envelope_pb2, hub_pb2_grpc, transaction_pb2
from demo.network import free_port
from gateway.config import HubConfig, RegistryEntry
from gateway.server import Hub
from gateway.storage import reconciliations as runs
from tests.builders import external, grant_standing_authorization, issuance

T = transaction_pb2


def hub_config(
    pki: Path,
    folder: Path,
    suspended: frozenset[str] = frozenset(),
    limits: Mapping[str, Limit] | None = None,
) -> HubConfig:
    files = RegistryFiles(pki, "HUB")
    registries = {
        registry: RegistryEntry(
            registry, "party", f"127.0.0.1:{free_port()}", frozenset({"CA0001"}),
            registry in suspended, (limits or {}).get(registry),
        )
        for registry in ("GHA01", "CHE01")
    }  # fmt: skip
    return HubConfig(
        registry_id="HUB",
        listen=f"127.0.0.1:{free_port()}",
        admin_listen=f"127.0.0.1:{free_port()}",
        database=f"sqlite:///{folder / 'hub.db'}",
        ca_certificate=files.ca_certificate,
        tls_certificate=files.tls_certificate,
        tls_key=files.tls_key,
        signing_key=files.signing_key,
        keys=pki / "keys.toml",
        registries=registries,
    )


class Registry:
    """A registry as a client of the hub: its key, its TLS identity, a channel."""

    def __init__(self, pki: Path, registry: str, channel: grpc.aio.Channel) -> None:
        self.registry = registry
        self.key = SigningKey.from_pem(RegistryFiles(pki, registry).signing_key.read_bytes())
        self.directory = read_key_file(pki / "keys.toml")
        self.channel = channel
        self.hub = hub_pb2_grpc.HubStub(channel)

    def seal(self, message: Message, sent_at: datetime | None = None) -> envelope_pb2.Envelope:
        header = new_header(self.registry, "HUB", sent_at or datetime.now(UTC))
        message.header.CopyFrom(header)  # type: ignore[attr-defined]
        return seal(message, [self.key])

    def open(self, reply: envelope_pb2.Envelope, kind: type[Message]) -> Message:
        return open_envelope(
            reply,
            accepted={kind.DESCRIPTOR.full_name: kind},
            directory=self.directory,
            recipient=self.registry,
            peer_identity="HUB",
            now=datetime.now(UTC),
        ).payload

    async def propose(self, transaction: transaction_pb2.Transaction) -> T.Receipt:
        reply = await self.hub.ProposeTransaction(
            self.seal(T.TransactionProposal(transaction=transaction)), timeout=10
        )
        receipt = self.open(reply, T.Receipt)
        assert isinstance(receipt, T.Receipt)
        return receipt


@asynccontextmanager
async def running_hub(
    pki: Path,
    folder: Path,
    suspended: frozenset[str] = frozenset(),
    limits: Mapping[str, Limit] | None = None,
    **changes: Any,
) -> AsyncIterator[tuple[Hub, dict[str, Registry]]]:
    """A hub serving in this process; ``changes`` replace fields of its configuration."""
    hub = Hub(replace(hub_config(pki, folder, suspended, limits), **changes))
    await hub.start()
    grant_standing_authorization(hub.database)
    channels = {
        registry: secure_channel(
            hub.config.listen, "HUB", TlsMaterial.load(RegistryFiles(pki, registry))
        )
        for registry in ("GHA01", "CHE01")
    }
    try:
        yield hub, {name: Registry(pki, name, channel) for name, channel in channels.items()}
    finally:
        for channel in channels.values():
            await channel.close(grace=None)
        await hub.stop()


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), timeout=60))


async def refusal(call: Awaitable[object]) -> tuple[grpc.StatusCode, Code | None]:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    found = refusal_from_error(error.value)
    return error.value.code(), found.code if found else None


def test_a_replayed_proposal_gets_the_same_receipt_byte_for_byte(pki: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(pki, tmp_path) as (_, registries):
            gha = registries["GHA01"]
            request = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-1", 1, 100)))
            first = await gha.hub.ProposeTransaction(request, timeout=10)
            again = await gha.hub.ProposeTransaction(request, timeout=10)
            assert first.SerializeToString() == again.SerializeToString()
            receipt = gha.open(first, T.Receipt)
            assert isinstance(receipt, T.Receipt)
            assert receipt.status == T.TRANSACTION_STATUS_COMPLETED

    run(body)


def test_a_reused_message_id_with_other_bytes_is_refused(pki: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(pki, tmp_path) as (_, registries):
            gha = registries["GHA01"]
            request = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-1", 1, 100)))
            await gha.hub.ProposeTransaction(request, timeout=10)
            other = T.TransactionProposal.FromString(request.payload)
            other.transaction.transaction_id = "GHA01-2"
            forged = seal(other, [gha.key])  # same header, same message id, other bytes
            status, code = await refusal(gha.hub.ProposeTransaction(forged, timeout=10))
            assert (status, code) == (grpc.StatusCode.ALREADY_EXISTS, Code.MESSAGE_ID_REUSED)
            receipt = await gha.propose(issuance("GHA01-3", 200, 300))
            assert receipt.accepted  # and the hub kept serving

    run(body)


def test_a_certificate_of_one_registry_cannot_send_for_another(pki: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(pki, tmp_path) as (_, registries):
            gha, che = registries["GHA01"], registries["CHE01"]
            # CHE01's own message, signed by CHE01, sent over GHA01's TLS connection.
            message = T.TransactionProposal(transaction=issuance("CHE01-1", 1, 10))
            status, code = await refusal(gha.hub.ProposeTransaction(che.seal(message), timeout=10))
            assert (status, code) == (
                grpc.StatusCode.PERMISSION_DENIED,
                Code.CERTIFICATE_IDENTITY_MISMATCH,
            )

    run(body)


def test_stale_bad_and_suspended_messages_are_refused_with_their_codes(
    pki: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "gateway.server")

    async def body() -> None:
        async with running_hub(pki, tmp_path, suspended=frozenset({"CHE01"})) as (_, registries):
            gha, che = registries["GHA01"], registries["CHE01"]
            old = datetime.now(UTC) - timedelta(minutes=10)
            stale = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-1", 1, 10)), old)
            assert await refusal(gha.hub.ProposeTransaction(stale, timeout=10)) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                Code.CLOCK_SKEW,
            )
            tampered = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-1", 1, 10)))
            tampered.payload = tampered.payload.replace(b"GHA01-1", b"GHA01-7")
            assert await refusal(gha.hub.ProposeTransaction(tampered, timeout=10)) == (
                grpc.StatusCode.UNAUTHENTICATED,
                Code.SIGNATURE_INVALID,
            )
            from_suspended = che.seal(T.TransactionProposal(transaction=issuance("CHE01-1", 1, 9)))
            assert await refusal(che.hub.ProposeTransaction(from_suspended, timeout=10)) == (
                grpc.StatusCode.PERMISSION_DENIED,
                Code.REGISTRY_SUSPENDED,
            )
            assert (await gha.propose(issuance("GHA01-1", 1, 10))).accepted
            for _ in range(3):  # counted for the next line, not logged one by one
                await refusal(che.hub.ProposeTransaction(from_suspended, timeout=10))

    run(body)
    # The log names the peer and the code of each refusal: the first of each pair at once.
    lines = [(r.getMessage(), getattr(r, "peer", None)) for r in caplog.records]
    assert [peer for _, peer in lines] == ["GHA01", "GHA01", "CHE01"]
    assert lines[0][0].startswith("refused a message from GHA01: 1036 CLOCK_SKEW")
    assert lines[1][0].startswith("refused a message from GHA01: 1023 SIGNATURE_INVALID")
    assert (
        lines[2][0] == "refused a message from CHE01: 1040 REGISTRY_SUSPENDED: CHE01 is suspended"
    )


def test_status_queries_answer_only_the_registries_involved(pki: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(pki, tmp_path) as (_, registries):
            gha, che = registries["GHA01"], registries["CHE01"]
            await gha.propose(issuance("GHA01-1", 1, 10))
            for registry, found in ((gha, True), (che, False)):
                query = registry.seal(T.StatusQuery(transaction_id="GHA01-1"))
                answer = registry.open(
                    await registry.hub.GetTransactionStatus(query, timeout=10), T.StatusAnswer
                )
                assert isinstance(answer, T.StatusAnswer)
                assert answer.found is found
                if found:
                    assert answer.status == T.TRANSACTION_STATUS_COMPLETED
                    assert answer.transaction.transaction_id == "GHA01-1"
                else:
                    assert [r.code for r in answer.results] == [Code.TRANSACTION_UNKNOWN.value]

    run(body)


def test_status_notices_are_checked_before_they_count(pki: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(pki, tmp_path) as (_, registries):
            gha, che = registries["GHA01"], registries["CHE01"]
            await gha.propose(issuance("GHA01-1", 1, 100))
            assert (await gha.propose(external("GHA01-2", 1, 10))).status == (
                T.TRANSACTION_STATUS_CHECKED
            )

            async def notify(sender: Registry, transaction_id: str, status: int) -> T.Receipt:
                notice = T.StatusNotice(transaction_id=transaction_id, status=status)  # type: ignore[arg-type]
                reply = await sender.hub.NotifyStatus(sender.seal(notice), timeout=10)
                receipt = sender.open(reply, T.Receipt)
                assert isinstance(receipt, T.Receipt)
                return receipt

            cases = [
                (che, "GHA01-9", T.TRANSACTION_STATUS_ACCEPTED, Code.TRANSACTION_UNKNOWN),
                (gha, "GHA01-2", T.TRANSACTION_STATUS_ACCEPTED, Code.REGISTRY_NOT_PARTY_TO_UNITS),
                (che, "GHA01-2", T.TRANSACTION_STATUS_COMPLETED, Code.STATUS_TRANSITION_INVALID),
            ]
            for sender, transaction_id, status, code in cases:
                receipt = await notify(sender, transaction_id, status)
                assert not receipt.accepted
                assert [r.code for r in receipt.results] == [code.value]
            terminated = await notify(che, "GHA01-2", T.TRANSACTION_STATUS_TERMINATED)
            assert [r.code for r in terminated.results] == [Code.STATUS_TRANSITION_INVALID.value]
            done = await notify(che, "GHA01-2", T.TRANSACTION_STATUS_REJECTED)
            assert (done.accepted, done.status) == (True, T.TRANSACTION_STATUS_REJECTED)
            late = await notify(che, "GHA01-2", T.TRANSACTION_STATUS_ACCEPTED)
            assert [r.code for r in late.results] == [Code.TRANSACTION_ALREADY_FINAL.value]
            assert late.status == T.TRANSACTION_STATUS_REJECTED

    run(body)


def test_proposals_involving_a_registry_under_reconciliation_wait_and_record_nothing(
    pki: Path, tmp_path: Path
) -> None:
    """A run with CHE01 has started and holds (as the hub's reconciler starts one): GHA01's
    transfer to CHE01 is answered UNAVAILABLE with 7002 and not recorded; once the run has
    released CHE01 (both snapshots pinned), the same message is taken, the run still open."""

    async def body() -> None:
        async with running_hub(pki, tmp_path) as (hub, registries):
            gha = registries["GHA01"]
            assert (await gha.propose(issuance("GHA01-1", 1, 100))).accepted
            now = datetime.now(UTC)
            hub.database.write_now(lambda unit: runs.insert_run(unit, "RUN-1", "CHE01", 16, 2, now))
            request = gha.seal(T.TransactionProposal(transaction=external("GHA01-2", 1, 10)))
            status, code = await refusal(gha.hub.ProposeTransaction(request, timeout=10))
            assert (status, code) == (grpc.StatusCode.UNAVAILABLE, Code.SNAPSHOT_IN_PROGRESS)
            assert (await gha.propose(issuance("GHA01-3", 200, 300))).accepted  # not involved
            hub.database.write_now(lambda unit: runs.release(unit, "RUN-1", datetime.now(UTC)))
            reply = await gha.hub.ProposeTransaction(request, timeout=10)
            receipt = gha.open(reply, T.Receipt)
            assert isinstance(receipt, T.Receipt)
            assert receipt.status == T.TRANSACTION_STATUS_CHECKED
            still = hub.database.read_now(lambda c: runs.get_run(c, "RUN-1"))
            assert still is not None
            assert (still.open, still.holding) == (True, False)

    run(body)


def test_the_hub_logs_a_message_once_and_only_once_its_effects_are_committed(
    pki: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch whose second proposal is held back (7002) is undone and taken again message
    by message: the first and third are logged once each, the second not at all."""
    caplog.set_level(logging.INFO, "gateway.hub")

    async def body() -> None:
        async with running_hub(pki, tmp_path) as (hub, registries):
            gha = registries["GHA01"]
            now = datetime.now(UTC)
            hub.database.write_now(lambda unit: runs.insert_run(unit, "RUN-1", "CHE01", 16, 2, now))
            proposals = [
                issuance("GHA01-1", 1, 100),
                external("GHA01-2", 1, 10),
                issuance("GHA01-3", 200, 300),
            ]
            envelopes = [gha.seal(T.TransactionProposal(transaction=t)) for t in proposals]
            reply = await gha.hub.SubmitBatch(envelope_pb2.EnvelopeBatch(envelopes=envelopes))
            assert [a.WhichOneof("answer") for a in reply.answers] == ["reply", "status", "reply"]

    run(body)
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway.hub"]
    assert logged == [
        "TransactionProposal GHA01-1: COMPLETED",
        "TransactionProposal GHA01-3: COMPLETED",
    ]


def test_a_run_left_holding_by_a_stopped_hub_releases_its_registry_at_the_next_start(
    pki: Path, tmp_path: Path
) -> None:
    """One hub process per SQLite file: a run still open when the hub starts is a stopped
    process's, so it ends at once and its registry's proposals are taken again."""

    stopped = Hub(hub_config(pki, tmp_path, frozenset(), None))
    stopped.database.migrate()
    now = datetime.now(UTC)
    stopped.database.write_now(lambda unit: runs.insert_run(unit, "RUN-1", "CHE01", 16, 2, now))
    stopped.database.close()

    async def body() -> None:
        async with running_hub(pki, tmp_path) as (hub, registries):
            left = hub.database.read_now(lambda c: runs.get_run(c, "RUN-1"))
            assert left is not None
            assert (left.open, left.holding, left.status) == (False, False, runs.START_DENIED)
            assert left.released_at is not None
            gha = registries["GHA01"]
            assert (await gha.propose(issuance("GHA01-1", 1, 100))).accepted
            transfer = gha.seal(T.TransactionProposal(transaction=external("GHA01-2", 1, 10)))
            receipt = gha.open(await gha.hub.ProposeTransaction(transfer, timeout=10), T.Receipt)
            assert isinstance(receipt, T.Receipt)
            assert receipt.status == T.TRANSACTION_STATUS_CHECKED

    run(body)


def test_the_hub_says_serving_only_once_both_its_ports_are_open(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever waits for health (the network, a supervisor) may call the admin port next: the
    hub port, open first, answers NOT_SERVING while the admin port is still starting."""
    seen: list[str] = []
    make_server = grpc.aio.server

    def server(*args: Any, **kwargs: Any) -> grpc.aio.Server:
        made = make_server(*args, **kwargs)
        start = made.start

        async def checked_start() -> None:
            if seen:  # the hub port is open: ask it, over mTLS, as a caller would
                seen.append(await _health(hub.config.listen, pki, ""))
            else:
                seen.append("(first port)")
            await start()

        made.start = checked_start  # type: ignore[method-assign]
        return made

    monkeypatch.setattr(grpc.aio, "server", server)
    hub = Hub(hub_config(pki, tmp_path, frozenset(), None))

    async def body() -> None:
        await hub.start()
        try:
            assert seen == ["(first port)", "NOT_SERVING"]
            for service in ("", "article6.v1.Hub"):
                assert await _health(hub.config.listen, pki, service) == "SERVING"
                assert await _health(hub.config.admin_listen, pki, service) == "SERVING"
        finally:
            await hub.stop()

    run(body)


async def _health(endpoint: str, pki: Path, service: str) -> str:
    channel = secure_channel(endpoint, "HUB", TlsMaterial.load(RegistryFiles(pki, "GHA01")))
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        return name
    finally:
        await channel.close(grace=None)
