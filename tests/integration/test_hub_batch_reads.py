"""A batch of messages at the hub reads once what its messages read before they change
anything (gateway.reads), and each message is still answered as if it came alone: over
Hub.SubmitBatch on loopback mutual TLS, the hub on SQLite (and on PostgreSQL where named)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf.message import Message
from google.rpc import status_pb2  # type: ignore[import-untyped]
from sqlalchemy import Connection, event

from article6.codes import Code
from article6.model import Status
from article6.v1 import envelope_pb2, reconciliation_pb2, transaction_pb2
from gateway import reads
from gateway.server import Hub
from gateway.storage import ledger
from gateway.storage import reconciliations as runs
from gateway.storage.records import change_statuses
from tests.builders import external, issuance
from tests.databases import postgres_database
from tests.integration.test_hub_legs import confirmation
from tests.integration.test_hub_rpc import Registry, run, running_hub

T = transaction_pb2
TABLES = ("transactions", "reconciliation_runs", "discrepancies")


async def _batch(gha: Registry, messages: list[Message]) -> list[T.Receipt]:
    batch = envelope_pb2.EnvelopeBatch(envelopes=[gha.seal(m) for m in messages])
    reply = await gha.hub.SubmitBatch(batch, timeout=10)
    receipts = []
    for answer in reply.answers:
        receipt = gha.open(answer.reply, T.Receipt)
        assert isinstance(receipt, T.Receipt)
        receipts.append(receipt)
    return receipts


def _proposal(transaction: T.Transaction) -> T.TransactionProposal:
    return T.TransactionProposal(transaction=transaction)


def _codes(receipt: T.Receipt) -> list[int]:
    return [result.code for result in receipt.results]


def _traced(hub: Hub) -> list[str]:
    """The SQL the hub's writer runs from now on (SQLite's trace of each statement)."""
    statements: list[str] = []

    def checked_out(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    event.listen(hub.database.engine, "checkout", checked_out)
    return statements


def _reads(statements: list[str]) -> Counter[str]:
    """SELECTs by the table they read first."""
    found = (re.search(r"\bFROM (\w+)", sql) for sql in statements if sql.startswith("SELECT"))
    return Counter(match.group(1) for match in found if match and match.group(1) in TABLES)


def test_a_batch_of_proposals_asks_once_for_ids_runs_and_frozen_serials(
    pki: Path, tmp_path: Path
) -> None:
    """Twenty transfers in one batch: one query for which of their ids were proposed before,
    one for the registries held by a reconciliation run, one for open discrepancies; not
    three a proposal."""

    async def body() -> None:
        async with running_hub(pki, tmp_path) as (hub, registries):
            gha = registries["GHA01"]
            assert (await gha.propose(issuance("GHA01-1", 1, 1000))).accepted
            statements = _traced(hub)
            transfers = [
                _proposal(external(f"GHA01-{n}", 10 * n, 10 * n + 9)) for n in range(2, 22)
            ]
            receipts = await _batch(gha, list(transfers))
            assert [r.status for r in receipts] == [T.TRANSACTION_STATUS_CHECKED] * 20
            assert _reads(statements) == {"transactions": 1, "reconciliation_runs": 1,
                                          "discrepancies": 1}  # fmt: skip

    run(body)


def test_an_id_proposed_twice_in_one_batch_is_refused_the_second_time(
    pki: Path, tmp_path: Path
) -> None:
    async def body() -> None:
        async with running_hub(pki, tmp_path) as (_, registries):
            gha = registries["GHA01"]
            assert (await gha.propose(issuance("GHA01-1", 1, 1000))).accepted
            first, second = external("GHA01-2", 1, 10), external("GHA01-2", 11, 20)
            other = external("GHA01-3", 21, 30)
            receipts = await _batch(gha, [_proposal(first), _proposal(other), _proposal(second)])
            assert [r.status for r in receipts[:2]] == [T.TRANSACTION_STATUS_CHECKED] * 2
            assert _codes(receipts[2]) == [Code.TRANSACTION_ID_REUSED.value]
            assert not receipts[2].accepted

    run(body)


def test_serials_frozen_by_a_confirmation_stop_a_proposal_later_in_the_same_batch(
    pki: Path, tmp_path: Path
) -> None:
    """The confirmation differs from the ledger, which freezes the serials at once: the
    proposal after it in the batch must find them frozen, though none were when the batch
    began."""

    async def body() -> None:
        async with running_hub(pki, tmp_path) as (_, registries):
            gha = registries["GHA01"]
            assert (await gha.propose(issuance("GHA01-1", 1, 1000))).accepted
            differing = reconciliation_pb2.LegConfirmation.FromString(
                confirmation("GHA01-1", (1, 1000, 2023))  # issued as 2024
            )
            transfer = _proposal(external("GHA01-2", 1, 10))
            compared, proposed = await _batch(gha, [differing, transfer])
            assert _codes(compared) == [Code.LEG_CONFIRMATION_MISMATCH.value]
            assert _codes(proposed) == [Code.UNITS_FROZEN.value]
            assert proposed.status == T.TRANSACTION_STATUS_CHECKED_DISCREPANCY

    run(body)


def _held(hub: Hub, registry: str) -> list[tuple[int, int]]:
    blocks = hub.database.read_now(lambda c: ledger.blocks_of_registry(c, registry))
    return [(block.serial_first, block.serial_last) for block in blocks]


def test_a_proposal_sees_what_an_earlier_one_of_its_batch_did_to_the_ledger_and_locks(
    pki: Path, tmp_path: Path, hub_database_url: str
) -> None:
    """The ledger and the locks are read ahead for the whole batch, and each message sees
    them as the earlier ones left them: units issued by the first proposal are there for the
    second, and serials it locked are locked for the third."""

    async def body() -> None:
        async with running_hub(pki, tmp_path, database=hub_database_url) as (hub, registries):
            gha = registries["GHA01"]
            batch = [issuance("GHA01-1", 1, 100), external("GHA01-2", 1, 10),
                     external("GHA01-3", 5, 15), issuance("GHA01-4", 50, 60),
                     external("GHA01-5", 11, 20)]  # fmt: skip
            receipts = await _batch(gha, [_proposal(t) for t in batch])
            assert [r.status for r in receipts] == [
                T.TRANSACTION_STATUS_COMPLETED, T.TRANSACTION_STATUS_CHECKED,
                T.TRANSACTION_STATUS_CHECKED_DISCREPANCY, T.TRANSACTION_STATUS_CHECKED_DISCREPANCY,
                T.TRANSACTION_STATUS_CHECKED,
            ]  # fmt: skip
            assert _codes(receipts[2]) == [Code.UNITS_LOCKED.value]
            assert _codes(receipts[3]) == [Code.SERIALS_ALREADY_ISSUED.value]
            assert _held(hub, "GHA01") == [(1, 100)]

    run(body)


def test_decisions_in_one_batch_each_see_the_ledger_the_one_before_left(
    pki: Path, tmp_path: Path, hub_database_url: str
) -> None:
    """Three transfers of neighbouring serials accepted in one batch: each completion merges
    its units into the acquirer's block that the one before it wrote in the same batch, so
    the ledger ends as two blocks, not overlapping or broken ones."""

    async def body() -> None:
        async with running_hub(pki, tmp_path, database=hub_database_url) as (hub, registries):
            gha, che = registries["GHA01"], registries["CHE01"]
            assert (await gha.propose(issuance("GHA01-1", 1, 100))).accepted
            ids = ["GHA01-2", "GHA01-3", "GHA01-4"]
            proposals = [external(i, 10 * n + 1, 10 * n + 10) for n, i in enumerate(ids)]
            await _batch(gha, [_proposal(p) for p in proposals])
            accepted = T.TRANSACTION_STATUS_ACCEPTED
            notices = [T.StatusNotice(transaction_id=i, status=accepted) for i in ids]
            receipts = await _batch(che, list(notices))
            assert [r.status for r in receipts] == [T.TRANSACTION_STATUS_COMPLETED] * 3
            assert _held(hub, "CHE01") == [(1, 30)]
            assert _held(hub, "GHA01") == [(31, 100)]

    run(body)


@pytest.mark.postgres
def test_on_postgresql_a_batch_reads_the_ledger_and_the_locks_in_one_statement_each(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty transfers in one batch: the ledger around all their serials in one statement
    and the locks on them in another, not two statements a proposal, and the transactions
    and their locks written in one each; and their twenty completions in one batch read the
    ledger in one statement and write it in two, with one more for the locks released and
    one for the twenty status changes, and no pipeline of their own (an empty one would
    still cost a round trip each)."""
    statements: list[str] = []
    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany
    pipelines: list[object] = []
    pipeline = psycopg.Connection.pipeline

    def counted(connection: psycopg.Connection[Any]) -> Any:
        pipelines.append(connection)
        return pipeline(connection)

    def traced(cursor: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return execute(cursor, query, *args, **kwargs)

    def traced_many(cursor: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return executemany(cursor, query, *args, **kwargs)

    async def body(url: str) -> None:
        async with running_hub(pki, tmp_path, database=url) as (_, registries):
            gha, che = registries["GHA01"], registries["CHE01"]
            assert (await gha.propose(issuance("GHA01-1", 1, 1000))).accepted
            ids = [f"GHA01-{n}" for n in range(2, 22)]
            transfers = [external(i, 10 * n, 10 * n + 9) for n, i in enumerate(ids, start=2)]
            monkeypatch.setattr(psycopg.Cursor, "execute", traced)
            monkeypatch.setattr(psycopg.Cursor, "executemany", traced_many)
            receipts = await _batch(gha, [_proposal(t) for t in transfers])
            assert [r.status for r in receipts] == [T.TRANSACTION_STATUS_CHECKED] * 20
            assert _selects(statements) == {"ledger_blocks": 1, "locks": 1}
            assert _writes(statements) == {"INSERT transactions": 1, "INSERT locks": 1}
            statements.clear()
            monkeypatch.setattr(psycopg.Connection, "pipeline", counted)
            accepted = T.TRANSACTION_STATUS_ACCEPTED
            notices = [T.StatusNotice(transaction_id=i, status=accepted) for i in ids]
            receipts = await _batch(che, list(notices))
            assert [r.status for r in receipts] == [T.TRANSACTION_STATUS_COMPLETED] * 20
            assert _selects(statements) == {"ledger_blocks": 1}
            # Each completion replaced blocks the one before it wrote: what reaches the table
            # is the net change, in a statement each for the rows gone and the rows written.
            assert _writes(statements) == {
                "DELETE ledger_blocks": 1, "INSERT ledger_blocks": 1, "DELETE locks": 1,
                "UPDATE transactions": 1,
            }  # fmt: skip
            assert pipelines == []

    with postgres_database() as url:
        run(partial(body, url))


@pytest.mark.postgres
def test_a_status_another_hub_changed_after_the_batch_read_it_has_the_batch_run_again(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two transfers accepted in one batch. After the batch read them, and before it writes
    their status changes (kept back to the batch's end), another hub on the same database
    ends one (cancelled, its locks released). The batch's status change finds that one no
    longer CHECKED (WriteConflict), and the whole batch runs again from its reads: the
    cancelled transfer is answered as final (3004), the other completes, and only its units
    move."""
    ended: list[str] = []

    def raced(connection: Connection, changes: list[dict[str, Any]]) -> None:
        if not ended:  # the first write of the batch: another hub was quicker
            ended.append(changes[0]["id"])
            with psycopg.connect(connection.engine.url.set(drivername="postgresql")
                                 .render_as_string(hide_password=False)) as other:  # fmt: skip
                cancelled = Status.CANCELLED.value
                other.execute("UPDATE transactions SET status = %s WHERE transaction_id = %s",
                              (cancelled, ended[0]))  # fmt: skip
                other.execute("DELETE FROM locks WHERE transaction_id = %s", (ended[0],))
        change_statuses(connection, changes)

    async def body(url: str) -> None:
        async with running_hub(pki, tmp_path, database=url) as (hub, registries):
            gha, che = registries["GHA01"], registries["CHE01"]
            assert (await gha.propose(issuance("GHA01-1", 1, 100))).accepted
            transfers = [external("GHA01-2", 1, 10), external("GHA01-3", 11, 20)]
            await _batch(gha, [_proposal(t) for t in transfers])
            monkeypatch.setattr(reads, "change_statuses", raced)
            accepted = T.TRANSACTION_STATUS_ACCEPTED
            notices = [T.StatusNotice(transaction_id=t.transaction_id, status=accepted)
                       for t in transfers]  # fmt: skip
            first, second = await _batch(che, list(notices))
            assert ended == ["GHA01-2"]
            assert (first.status, _codes(first)) == (
                T.TRANSACTION_STATUS_CANCELLED, [Code.TRANSACTION_ALREADY_FINAL.value]
            )  # fmt: skip
            assert (second.status, _codes(second)) == (T.TRANSACTION_STATUS_COMPLETED, [])
            assert _held(hub, "CHE01") == [(11, 20)]
            assert _held(hub, "GHA01") == [(1, 10), (21, 100)]

    with postgres_database() as url:
        run(partial(body, url))


def _selects(statements: list[str]) -> Counter[str]:
    """SELECTs of the ledger's blocks or its locks, by table."""
    found = (re.search(r"\bFROM (ledger_blocks|locks)\b", sql) for sql in statements
             if sql.lstrip().startswith("SELECT"))  # fmt: skip
    return Counter(match.group(1) for match in found if match)


def _writes(statements: list[str]) -> Counter[str]:
    """INSERTs, UPDATEs and DELETEs of transactions, the ledger's blocks or its locks, by verb
    and table (an executemany, pipelined, counts once)."""
    verbs, tables = "INSERT INTO|UPDATE|DELETE FROM", "transactions|ledger_blocks|locks"
    found = (re.match(rf"\s*({verbs}) ({tables})\b", sql) for sql in statements)
    return Counter(f"{m.group(1).split()[0]} {m.group(2)}" for m in found if m)


def test_a_batch_taken_again_after_a_refusal_starts_from_the_ledger_before_it(
    pki: Path, tmp_path: Path, hub_database_url: str
) -> None:
    """The first pass issues units, then a proposal is refused by raising (its acquirer is
    being reconciled), which undoes the pass; the batch is taken again message by message.
    The ledger read ahead must be back as it was before the batch, or the issuance would
    find its own units of the undone pass and be refused (2002) the second time."""

    async def body() -> None:
        async with running_hub(pki, tmp_path, database=hub_database_url) as (hub, registries):
            gha = registries["GHA01"]
            assert (await gha.propose(issuance("GHA01-1", 1, 100))).accepted
            now = datetime.now(UTC)
            hub.database.write_now(lambda unit: runs.insert_run(unit, "RUN-1", "CHE01", 16, 2, now))
            batch = [issuance("GHA01-2", 200, 300), external("GHA01-3", 1, 10)]
            sealed = envelope_pb2.EnvelopeBatch(envelopes=[gha.seal(_proposal(t)) for t in batch])
            issued, held = (await gha.hub.SubmitBatch(sealed, timeout=10)).answers
            receipt = gha.open(issued.reply, T.Receipt)
            assert isinstance(receipt, T.Receipt)
            assert (receipt.status, _codes(receipt)) == (T.TRANSACTION_STATUS_COMPLETED, [])
            status = status_pb2.Status.FromString(held.status)
            assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
            assert str(Code.SNAPSHOT_IN_PROGRESS.value) in status.message
            assert _held(hub, "GHA01") == [(1, 100), (200, 300)]

    run(body)
