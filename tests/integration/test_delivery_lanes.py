"""The pump (article6.pump.Pump), driven with a database and peers that answer as the test
says: what goes when, not what it records (the recording is tested through real processes
in tests/e2e). The peers are the pump's transport, in memory. Deadlines here are the loop's
own, never timings of the machine: each test waits for a condition that the old loop could
not meet for seconds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import grpc

from article6.batch import Result
from article6.breaker import BreakerState
from article6.keys import KeyDirectory, SigningKey
from article6.outbox import Outbox, OutboxMessage
from article6.pump import Attempt, DeliveryConfig, Kind, Pump, Signer, Source
from article6.status import Failure
from article6.unit import Unit
from article6.v1 import envelope_pb2, transaction_pb2
from gateway.storage.schema import outbox
from tests.integration.test_hub_rpc import run

RPC_TIMEOUT = 1.0  # a claim's lease is then 4 s: a message left to its lease waits that long
NOTICE = "article6.v1.StatusNotice"


class FakeDatabase:
    """Claims take ``claim_seconds`` (a busy writer) and find only the messages whose claims
    the pump released, for the lanes that have room; recording is a no-op."""

    def __init__(self, claim_seconds: float) -> None:
        self.claim_seconds = claim_seconds
        self.claims = 0
        self.released: dict[int, OutboxMessage] = {}
        self.pump: Pump | None = None

    async def write(self, work: Callable[..., Any]) -> Any:
        if not isinstance(work, partial) or work.func.__name__ != "_claim":
            return None
        self.claims += 1
        await asyncio.sleep(self.claim_seconds)
        (turned_away,) = work.args
        assert self.pump is not None
        self.released.update((number, message(number, "CHE01")) for number in turned_away)
        full = set(self.pump.full_lanes())
        claimed = [m for m in self.released.values() if m.recipient not in full][:64]
        for m in claimed:
            del self.released[m.id]
        return claimed


def message(number: int, recipient: str) -> OutboxMessage:
    envelope = envelope_pb2.Envelope(payload_type=NOTICE, payload=str(number).encode())
    return OutboxMessage(
        id=number, recipient=recipient, message_id=f"m-{number}", payload_type=NOTICE,
        transaction_id=None, envelope=envelope.SerializeToString(), attempts=0,
    )  # fmt: skip


class Registries:
    """The pump's transport: a silent registry's batches wait out the deadline and fail; the
    others answer after ``answer_seconds``."""

    def __init__(self, silent: frozenset[str] = frozenset(), answer_seconds: float = 0) -> None:
        self.silent = silent
        self.answer_seconds = answer_seconds
        self.sent: dict[str, list[int]] = {}

    async def send(
        self, recipient: str, items: Sequence[tuple[str, envelope_pb2.Envelope]], timeout: float
    ) -> list[Result]:
        self.sent.setdefault(recipient, []).extend(int(e.payload) for _, e in items)
        await asyncio.sleep(self.answer_seconds)
        if recipient in self.silent:
            await asyncio.sleep(RPC_TIMEOUT)
            failure = Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", None)
            return [failure for _ in items]
        return [envelope_pb2.Envelope() for _ in items]


class Nobody:
    """A pump owner to whom attempts mean nothing."""

    def attempted(self, unit: Unit, attempt: Attempt) -> None:
        return

    def delivered(
        self, unit: Unit, receipts: Sequence[tuple[OutboxMessage, transaction_pb2.Receipt]]
    ) -> None:
        return


def sent(registries: Registries, registry: str, number: int) -> bool:
    return number in registries.sent.get(registry, [])


def deliverer(database: FakeDatabase, registries: Registries) -> Pump:
    config = DeliveryConfig(rpc_timeout_seconds=RPC_TIMEOUT, breaker_open_seconds=0.5)
    made = Pump(
        source=Source(Outbox(outbox), database.write), transport=registries, peer=Nobody(),
        config=config, kinds={NOTICE: Kind(transaction_pb2.StatusNotice, "Deliver")},
        signer=Signer("HUB", SigningKey.generate(), KeyDirectory(())),
        log=logging.getLogger("test.pump"),
    )  # fmt: skip
    database.pump = made
    return made


async def until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def running(made: Pump, body: Callable[[], Awaitable[None]]) -> None:
    stopping = asyncio.Event()
    loop = asyncio.create_task(made.run(stopping))
    await asyncio.sleep(0)
    try:
        await body()
    finally:
        stopping.set()
        loop.cancel()


def test_a_dispatched_message_goes_at_once_even_while_claims_are_slow_and_find_nothing() -> None:
    """The 12 s stall: claims slower than the poll interval starved dispatched messages until
    their claims lapsed."""

    async def body() -> None:
        database, registries = FakeDatabase(claim_seconds=0.2), Registries()
        made = deliverer(database, registries)

        async def check() -> None:
            for number in range(1, 6):
                made.dispatch(message(number, "GHA01"))
                assert await until(partial(sent, registries, "GHA01", number), 1.0)
                await asyncio.sleep(0.3)  # let a slow claim start between messages
            assert database.claims >= 2

        await running(made, check)

    run(body)


def test_a_silent_registry_holds_up_only_its_own_lane_and_its_breaker_stops_the_waiting() -> None:
    async def body() -> None:
        registries = Registries(silent=frozenset({"SGP01"}))
        made = deliverer(FakeDatabase(claim_seconds=0.0), registries)

        async def check() -> None:
            for number in range(1, 2001):  # a backlog for the silent registry
                made.dispatch(message(number, "SGP01"))
            await asyncio.sleep(0.05)
            made.dispatch(message(5000, "CHE01"))
            # CHE01's message goes while SGP01's first batches still wait out their deadline.
            assert await until(partial(sent, registries, "CHE01", 5000), 0.5)
            assert len(registries.sent["SGP01"]) <= 2 * 64
            # Three unanswered batches open SGP01's breaker; then one probe at a time.
            assert await until(lambda: made.lane("SGP01").breaker.state is BreakerState.OPEN, 5)
            tried = len(registries.sent["SGP01"])
            assert tried == 3 * 64  # two at once, then one at a time once it failed
            for number in range(2001, 2101):  # offered while it rests: left to their claims
                made.dispatch(message(number, "SGP01"))
            await asyncio.sleep(0.6)  # its rest is over: one message probes it
            for number in range(2101, 2201):
                made.dispatch(message(number, "SGP01"))
            assert await until(lambda: len(registries.sent["SGP01"]) > tried, 0.5)
            await asyncio.sleep(0.3)
            assert registries.sent["SGP01"][tried:] == [2101]
            made.dispatch(message(5001, "CHE01"))
            assert await until(partial(sent, registries, "CHE01", 5001), 0.5)

        await running(made, check)

    run(body)


def test_a_message_a_full_lane_turns_away_goes_once_the_lane_has_room_not_after_its_lease() -> None:
    """The stall under load: a burst larger than a lane holds left the messages it turned
    away to their claims' leases (12 s with the default time-out), with nothing moving."""

    async def body() -> None:
        database, registries = FakeDatabase(claim_seconds=0.0), Registries(answer_seconds=0.1)
        made = deliverer(database, registries)

        async def check() -> None:
            for number in range(1, 1001):  # two batches in flight, eight queued: 360 too many
                made.dispatch(message(number, "CHE01"))
            await asyncio.sleep(0.05)
            assert database.released  # turned away, and released at the next claim
            # Ten rounds of 128 at 0.1 s each: well inside one lease (4 s here).
            assert await until(lambda: len(set(registries.sent.get("CHE01", []))) == 1000, 3.0)

        await running(made, check)

    run(body)
