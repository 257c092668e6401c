"""A batch of messages at the hub reads once what its messages read before they change
anything (gateway.reads), and each message is still answered as if it came alone: over
Hub.SubmitBatch on loopback mutual TLS, the hub on SQLite."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import event

from article6.codes import Code
from article6.v1 import envelope_pb2, reconciliation_pb2, transaction_pb2
from gateway.server import Hub
from tests.builders import external, issuance
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
