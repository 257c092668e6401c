"""A batch of messages taken exactly once in one unit of work (``inbox.exactly_once_all``):
each answered as if taken alone, one after another, on SQLite and PostgreSQL.

The messages' effects here are rows of a table of their own; what a message does at the hub
or at a registry is tested with the hub and the registries themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, event, insert, select

from article6.codes import Code, Refusal
from article6.envelope import Opened
from article6.headers import new_header
from article6.inbox import Answer, Respond, Taken, exactly_once_all, inbox_table
from article6.node.store import open_database
from article6.unit import Unit
from article6.v1 import envelope_pb2, transaction_pb2

metadata = MetaData()
inbox = inbox_table(metadata)
effects = Table("effects", metadata, Column("id", Integer, primary_key=True),
                Column("message_id", String(36), nullable=False))  # fmt: skip


@pytest.fixture
def engine(registry_database_url: str) -> Iterator[Engine]:
    engine = open_database(registry_database_url, metadata.create_all)
    yield engine
    engine.dispose()


def _message(message_id: str, payload: bytes = b"p", sent_at: datetime | None = None) -> Opened:
    header = new_header("GHA01", "HUB", sent_at or datetime.now(UTC), message_id)
    envelope = envelope_pb2.Envelope(payload_type="article6.v1.StatusQuery", payload=payload)
    return Opened(envelope, transaction_pb2.StatusQuery(), header, "GHA01")


def _effect(opened: Opened, refuse_after_writing: bool = False) -> Respond:
    """Write a row, then answer (or raise, having written: only a savepoint can undo it)."""

    def respond(unit: Unit, now: datetime) -> bytes:
        unit.connection.execute(insert(effects).values(message_id=opened.header.message_id))
        unit.record("GHA01", "applied", opened.header.message_id)
        if refuse_after_writing:
            raise Refusal(Code.TRANSACTION_UNKNOWN, opened.header.message_id)
        return f"answer to {opened.header.message_id}".encode()

    return respond


def _take(engine: Engine, batch: list[Taken]) -> tuple[list[Answer], Unit, int]:
    """The answers, the unit they were taken in, and the commits it took."""
    commits: list[int] = []

    def counted(_: object) -> None:
        commits.append(1)

    event.listen(engine, "commit", counted)
    try:
        with engine.begin() as connection:
            unit = Unit(connection)
            answers = exactly_once_all(unit, inbox, batch)
    finally:
        event.remove(engine, "commit", counted)
    return answers, unit, len(commits)


def _applied(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(effects.c.message_id).order_by(effects.c.id))
                    .scalars())  # fmt: skip


def test_a_refusal_after_writing_undoes_only_its_own_message(engine: Engine) -> None:
    a, b, c = _message("a"), _message("b"), _message("c")
    batch = [(a, _effect(a)), (b, _effect(b, refuse_after_writing=True)), (c, _effect(c))]
    answers, unit, commits = _take(engine, batch)

    assert (answers[0], answers[2]) == (b"answer to a", b"answer to c")
    assert isinstance(answers[1], Refusal)
    assert answers[1].code is Code.TRANSACTION_UNKNOWN
    assert _applied(engine) == ["a", "c"]  # b's row went with its savepoint, in the 2nd pass
    assert [entry[3] for entry in unit.entries] == ["a", "c"]  # and so did its audit note
    assert commits == 1
    again, _, _ = _take(engine, [(b, _effect(b))])  # a refused message was not recorded
    assert again == [b"answer to b"]


def test_a_message_repeated_in_its_batch_or_taken_before_gets_its_first_answer(
    engine: Engine,
) -> None:
    a, b = _message("a"), _message("b")
    _take(engine, [(a, _effect(a))])
    reused = _message("b", payload=b"other bytes")
    stale = _message("c", sent_at=datetime.now(UTC) - timedelta(minutes=10))
    batch = [(a, _effect(a)), (b, _effect(b)), (b, _effect(b)), (reused, _effect(reused)),
             (stale, _effect(stale))]  # fmt: skip
    answers, _, _ = _take(engine, batch)

    assert answers[:3] == [b"answer to a", b"answer to b", b"answer to b"]
    assert [a.code for a in answers[3:] if isinstance(a, Refusal)] == [
        Code.MESSAGE_ID_REUSED, Code.CLOCK_SKEW,
    ]  # fmt: skip
    assert _applied(engine) == ["a", "b"]  # each once
    with engine.connect() as connection:
        recorded = connection.execute(select(inbox.c.message_id).order_by(inbox.c.message_id))
        assert list(recorded.scalars()) == ["a", "b"]


def test_a_fault_in_one_message_is_its_own_answer(engine: Engine) -> None:
    a, b = _message("a"), _message("b")

    def broken(unit: Unit, now: datetime) -> bytes:
        raise ZeroDivisionError("a fault of ours")

    answers, _, _ = _take(engine, [(a, broken), (b, _effect(b))])
    assert isinstance(answers[0], ZeroDivisionError)
    assert answers[1] == b"answer to b"
    assert _applied(engine) == ["b"]
