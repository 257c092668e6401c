"""One pump for the hub and every registry (article6.pump), here a registry's: its real SQLite
books and writer, and the hub in memory (``InMemoryTransport``). What a change queues goes
to the pump at commit (no claim finds it), the hub's receipt settles the proposal in the unit
of work that marks it delivered, a retry refused as stale goes again re-stamped under the same
message id, and a registry file from before the shared outbox shape is brought up to it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
from google.protobuf.message import Message
from sqlalchemy import Engine, create_engine, select, text

from article6 import pump
from article6.blocks import serial_range
from article6.breaker import BreakerState
from article6.codes import Code, Refusal
from article6.envelope import open_envelope, seal
from article6.headers import new_header
from article6.keys import DirectoryKey, KeyDirectory, SigningKey
from article6.model import AccountType, Status, TransactionType
from article6.node import store
from article6.node.config import SenderConfig
from article6.node.engine import Proposal, RegistryEngine
from article6.node.sender import KINDS, Sender
from article6.node.service import Writer
from article6.outbox import OutboxMessage, claim
from article6.pump import InMemoryTransport
from article6.status import Failure
from article6.unit import Unit
from article6.v1 import envelope_pb2, transaction_pb2
from party_registry_stub import accounts
from tests.builders import CHE_ACCOUNT, issuance
from tests.integration.test_hub_rpc import run

HUB_KEY, GHA_KEY = SigningKey.generate(), SigningKey.generate()
DIRECTORY = KeyDirectory(
    DirectoryKey(registry, key.public_raw, datetime.now(UTC) - timedelta(days=1))
    for registry, key in (("HUB", HUB_KEY), ("GHA01", GHA_KEY))
)


@dataclass
class Hub:
    """The hub in memory: it opens what it is sent as the real one would, completes every
    proposal, and refuses as stale (1036) the first ``stale`` messages."""

    stale: int = 0
    refused: int = 0  # then refuses these as if their sender were suspended (1005)
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)  # rpc, message id, bytes

    async def answer(
        self, recipient: str, rpc: str, envelope: envelope_pb2.Envelope
    ) -> envelope_pb2.Envelope:
        accepted: dict[str, type[Message]] = {name: kind.payload for name, kind in KINDS.items()}
        opened = open_envelope(envelope, accepted=accepted, directory=DIRECTORY,
                               recipient=recipient, peer_identity="GHA01",
                               now=datetime.now(UTC))  # fmt: skip
        self.seen.append((rpc, opened.header.message_id, envelope.SerializeToString()))
        if self.stale:
            self.stale -= 1
            raise Refusal(Code.CLOCK_SKEW, "sent too long ago")
        if self.refused:
            self.refused -= 1
            raise Refusal(Code.REGISTRY_SUSPENDED, "GHA01 is suspended")
        receipt = transaction_pb2.Receipt(accepted=True, in_reply_to=opened.header.message_id)
        if isinstance(opened.payload, transaction_pb2.TransactionProposal):
            receipt.transaction_id = opened.payload.transaction.transaction_id
            receipt.status = transaction_pb2.TRANSACTION_STATUS_COMPLETED
        receipt.header.CopyFrom(new_header("HUB", "GHA01", datetime.now(UTC)))
        return seal(receipt, [HUB_KEY])


@pytest.fixture
def books(tmp_path: Path) -> Iterator[Engine]:
    engine = store.open_database(f"sqlite:///{tmp_path / 'gha01.db'}", accounts.metadata)
    yield engine
    engine.dispose()


def holding_gha01(books: Engine) -> tuple[RegistryEngine, str]:
    """GHA01's engine, with units 1-100 issued into an account of its own."""
    registry = RegistryEngine("GHA01", "HUB", GHA_KEY, accounts.AccountRules("GHA01"))
    with books.begin() as connection:
        account = accounts.open_account(connection, "GHA01", AccountType.HOLDING)
        issued = issuance("GHA01-900", 1, 100)  # its confirmation in the receipt: none queued
        registry.settle(Unit(connection), issued, Status.COMPLETED, confirm_in_receipt=True)
    return registry, account


class Claims:
    """The writer, noting what each of the pump's claims found; with ``again``, a recording
    of attempts is first run and rolled back, as when the writer runs a change again."""

    def __init__(self, writer: Writer, again: bool = False) -> None:
        self.writer = writer
        self.again = again
        self.found: list[list[OutboxMessage]] = []

    async def run(self, work: Any) -> Any:
        if self.again and isinstance(work, partial) and work.func.__name__ == "_record_all":
            with pytest.raises(RolledBack):
                await self.writer.run(partial(_rolled_back, work))
        done = await self.writer.run(work)
        if isinstance(work, partial) and work.func.__name__ == "_claim":
            self.found.append(done)
        return done


class RolledBack(Exception):
    """Raised after a change did its work, so that none of it is kept."""


def _rolled_back(work: Callable[[Unit], Any], unit: Unit) -> None:
    work(unit)
    raise RolledBack


@dataclass
class Counted:
    """The pump's metrics, as calls."""

    attempts: list[tuple[str, bool]] = field(default_factory=list)  # recipient, failed
    dead_letters: list[str] = field(default_factory=list)

    def attempt(self, recipient: str, failure: Failure | None) -> None:
        self.attempts.append((recipient, failure is not None))

    def dead_letter(self, recipient: str) -> None:
        self.dead_letters.append(recipient)

    def breaker(self, recipient: str, state: BreakerState) -> None:
        return


@dataclass
class Gha01:
    """GHA01's writer and pump (its claims noted), talking to the hub in memory."""

    writer: Writer
    sender: Sender
    claims: Claims
    account: str


async def pumping(
    books: Engine,
    hub: Hub,
    body: Callable[[Gha01], Awaitable[None]],
    counted: Counted | None = None,
    **config: Any,
) -> None:
    """Run ``body`` while GHA01's pump runs (its metrics to ``counted``, each recording of
    attempts run twice when given; ``config``: more of its ``[delivery]`` table)."""
    writer = Writer(books)
    settings = SenderConfig(backoff_initial_seconds=0.05, backoff_max_seconds=0.1, **config)
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # recovery's, never called here
    registry, account = holding_gha01(books)
    sender = Sender(registry, settings, writer, DIRECTORY, GHA_KEY, channel,
                    transport=InMemoryTransport(hub.answer))  # fmt: skip
    claims = Claims(writer, again=counted is not None)
    sender.pump.write = claims.run
    sender.pump.counts = counted
    stopping = asyncio.Event()
    task = asyncio.create_task(sender.run(stopping))
    try:
        await body(Gha01(writer, sender, claims, account))
    finally:
        stopping.set()
        await task
        await channel.close(grace=None)
        writer.close()


async def until(condition: Any, seconds: float = 10.0) -> None:
    """Wait for ``condition`` (a function returning a bool, or an awaitable of one)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await _value(condition()):
        assert asyncio.get_running_loop().time() < deadline, "the condition never came true"
        await asyncio.sleep(0.02)


async def _value(found: Any) -> Any:
    return await found if inspect.isawaitable(found) else found


def states(connection: Any) -> list[tuple[str, str, int]]:
    rows = connection.execute(
        select(store.outbox.c.payload_type, store.outbox.c.state, store.outbox.c.attempts)
        .order_by(store.outbox.c.id)
    )  # fmt: skip
    return [(row.payload_type.rsplit(".", 1)[1], row.state, row.attempts) for row in rows]


async def delivered(writer: Writer, count: int) -> bool:
    found = await writer.run(lambda unit: states(unit.connection))
    return len(found) == count and all(state == "delivered" for _, state, _ in found)


def transfer(account: str) -> Proposal:
    return Proposal(TransactionType.EXTERNAL_TRANSFER, account, "CHE01", CHE_ACCOUNT,
                    ranges=[serial_range(1, 40)])  # fmt: skip


def test_a_proposal_goes_at_commit_and_the_hubs_receipt_settles_it(books: Engine) -> None:
    hub = Hub()

    async def body(gha: Gha01) -> None:
        writer, registry = gha.writer, gha.sender.registry
        await until(lambda: bool(gha.claims.found))  # the pump is running
        proposal = transfer(gha.account)
        transaction_id = await writer.run(lambda unit: registry.propose(unit, proposal))

        async def settled() -> bool:
            local = await writer.run(lambda u: store.get_transaction(u.connection, transaction_id))
            return local is not None and local.status is Status.COMPLETED

        await until(settled)
        # The completion's leg confirmation is queued in the same unit, and goes too.
        await until(partial(delivered, writer, 2))
        found = await writer.run(lambda unit: states(unit.connection))
        assert found == [("TransactionProposal", "delivered", 0),
                         ("LegConfirmation", "delivered", 0)]  # fmt: skip
        assert not any(gha.claims.found), "handed over at commit: no claim found either"

    run(partial(pumping, books, hub, body))
    assert [rpc for rpc, _, _ in hub.seen] == ["ProposeTransaction", "SubmitReconciliation"]


def test_a_retry_refused_as_stale_goes_again_restamped_under_the_same_message_id(
    books: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At once: re-stamped, it is due now, so the pump claims it without waiting for its next
    poll (here an hour away, so the test fails rather than waits if it did)."""
    monkeypatch.setattr(pump, "IDLE_CLAIM_SECONDS", 3600.0)
    hub = Hub(stale=1)

    async def body(gha: Gha01) -> None:
        writer, registry, proposal = gha.writer, gha.sender.registry, transfer(gha.account)
        await writer.run(lambda unit: registry.propose(unit, proposal))
        await until(partial(delivered, writer, 2))
        found = await writer.run(lambda unit: states(unit.connection))
        assert found == [("TransactionProposal", "delivered", 1),
                         ("LegConfirmation", "delivered", 0)]  # fmt: skip

    run(partial(pumping, books, hub, body, poll_interval_seconds=3600.0))
    (_, first_id, first), (_, again_id, again) = hub.seen[:2]
    assert first_id == again_id
    assert first != again  # stamped and signed again


def test_each_attempt_and_dead_letter_is_counted_once_though_its_recording_runs_again(
    books: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    hub, counted = Hub(stale=1, refused=1), Counted()

    async def body(gha: Gha01) -> None:
        writer, registry = gha.writer, gha.sender.registry
        await writer.run(lambda unit: registry.propose(unit, transfer(gha.account)))
        await until(lambda: bool(counted.dead_letters))
        found = await writer.run(lambda unit: states(unit.connection))
        assert found == [("TransactionProposal", "dead", 2)]

    run(partial(pumping, books, hub, body, counted, max_attempts=2))
    # Stale (1036) goes again at once; refused (1005), it is the second and last attempt.
    assert counted.attempts == [("HUB", True), ("HUB", True)] == [("HUB", True)] * len(hub.seen)
    assert counted.dead_letters == ["HUB"]
    assert sum("dead letter" in r.getMessage() for r in caplog.records) == 1


def proposed_then_refused(unit: Unit, registry: RegistryEngine, account: str) -> None:
    with unit.savepoint():
        registry.propose(unit, transfer(account))
        raise Refusal(Code.UNITS_LOCKED, "a check after the proposal")


def test_a_change_rolled_back_to_a_savepoint_hands_nothing_over(books: Engine) -> None:
    registry, account = holding_gha01(books)
    handed: list[OutboxMessage] = []
    registry.outbox.hand_off.start(handed.append, timedelta(seconds=30))
    with books.begin() as connection:
        unit = Unit(connection)
        with pytest.raises(Refusal):
            proposed_then_refused(unit, registry, account)
        registry.propose(unit, transfer(account))
        actions = unit.take_actions()
    for action in actions:
        action()
    assert [m.payload_type for m in handed] == ["article6.v1.TransactionProposal"]
    with books.connect() as connection:
        (row,) = connection.execute(select(store.outbox)).all()
    assert (row.id, row.recipient) == (handed[0].id, "HUB")
    assert row.claimed_until is not None  # this process's, until it delivers it


def test_a_registry_file_from_before_the_shared_outbox_is_brought_up_to_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    with old.begin() as connection:  # the outbox as registries wrote it before
        connection.execute(text(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id VARCHAR(36)"
            " NOT NULL UNIQUE, payload_type VARCHAR(80) NOT NULL, transaction_id VARCHAR(40),"
            " envelope BLOB NOT NULL, state VARCHAR(12) NOT NULL, attempts INTEGER NOT NULL,"
            " created_at DATETIME NOT NULL, next_attempt_at DATETIME NOT NULL,"
            " last_error TEXT NOT NULL)"
        ))  # fmt: skip
        connection.execute(text(
            "INSERT INTO outbox (message_id, payload_type, transaction_id, envelope, state,"
            " attempts, created_at, next_attempt_at, last_error) VALUES ('m-1',"
            " 'article6.v1.TransactionProposal', 'GHA01-1', x'00', 'pending', 2,"
            " '2026-11-01 10:00:00.000000', '2026-11-01 10:00:00.000000', 'UNAVAILABLE')"
        ))  # fmt: skip
    old.dispose()
    engine = store.open_database(url)
    try:
        with engine.begin() as connection:
            store.start_outbox(connection, "HUB")
            (message,) = claim(connection, store.outbox, datetime.now(UTC), 10,
                               timedelta(seconds=12))  # fmt: skip
    finally:
        engine.dispose()
    assert (message.recipient, message.message_id, message.attempts) == ("HUB", "m-1", 2)
    assert message.created_at == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
