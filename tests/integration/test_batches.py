"""Batches on the wire: Hub.SubmitBatch over loopback mutual TLS, answered envelope by envelope
exactly as the unary RPCs answer, and the client that falls back to unary calls."""

from __future__ import annotations

from pathlib import Path

import grpc

from article6.batch import BatchClient
from article6.codes import Code
from article6.limits import MAX_BATCH_ENVELOPES
from article6.status import Failure
from article6.v1 import envelope_pb2, transaction_pb2
from tests.builders import issuance
from tests.integration.test_hub_rpc import refusal, run, running_hub

T = transaction_pb2
E = envelope_pb2
BATCH = "/article6.v1.Hub/SubmitBatch"


def test_each_envelope_of_a_batch_is_answered_as_its_own_rpc_would_answer_it(
    pki: Path, tmp_path: Path
) -> None:
    async def body() -> None:
        async with running_hub(pki, tmp_path) as (_, registries):
            gha = registries["GHA01"]
            first = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-1", 1, 100)))
            tampered = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-2", 200, 300)))
            tampered.payload = tampered.payload.replace(b"GHA01-2", b"GHA01-7")
            unexpected = gha.seal(T.Receipt(accepted=True))
            second = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-3", 400, 500)))
            batch = E.EnvelopeBatch(envelopes=[first, tampered, first, unexpected, second])
            reply = await gha.hub.SubmitBatch(batch, timeout=10)

            answers = list(reply.answers)
            assert [a.WhichOneof("answer") for a in answers] == [
                "reply", "status", "reply", "status", "reply",
            ]  # fmt: skip
            # The same message twice in one batch: applied once, the same receipt twice; and
            # the same bytes again through the unary RPC.
            assert answers[0].reply == answers[2].reply
            again = await gha.hub.ProposeTransaction(first, timeout=10)
            assert again.SerializeToString() == answers[0].reply.SerializeToString()
            refused = [Failure.of_status(answers[i].status) for i in (1, 3)]
            assert [(f.status, f.refusal and f.refusal.code) for f in refused] == [
                (grpc.StatusCode.UNAUTHENTICATED, Code.SIGNATURE_INVALID),
                (grpc.StatusCode.INVALID_ARGUMENT, Code.PAYLOAD_TYPE_UNEXPECTED),
            ]
            for answer, transaction_id in ((answers[0], "GHA01-1"), (answers[4], "GHA01-3")):
                receipt = gha.open(answer.reply, T.Receipt)
                assert isinstance(receipt, T.Receipt)
                assert (receipt.transaction_id, receipt.status) == (
                    transaction_id, T.TRANSACTION_STATUS_COMPLETED,
                )  # fmt: skip
            # A status query travels in a batch too, and finds what the first batch recorded.
            query = gha.seal(T.StatusQuery(transaction_id="GHA01-3"))
            (answer,) = (await gha.hub.SubmitBatch(E.EnvelopeBatch(envelopes=[query]))).answers
            found = gha.open(answer.reply, T.StatusAnswer)
            assert isinstance(found, T.StatusAnswer)
            assert found.found
            assert found.status == T.TRANSACTION_STATUS_COMPLETED

    run(body)


def test_an_oversized_or_malformed_batch_is_refused_whole_and_the_hub_keeps_serving(
    pki: Path, tmp_path: Path
) -> None:
    async def body() -> None:
        async with running_hub(pki, tmp_path) as (_, registries):
            gha = registries["GHA01"]
            proposal = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-1", 1, 100)))
            too_many = E.EnvelopeBatch(envelopes=[proposal] * (MAX_BATCH_ENVELOPES + 1))
            assert await refusal(gha.hub.SubmitBatch(too_many, timeout=10)) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                Code.BATCH_TOO_LARGE,
            )
            raw = gha.channel.unary_unary(BATCH, None, None)
            assert await refusal(raw(b"\x0a\xff\xff", timeout=10)) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                Code.ENVELOPE_MALFORMED,
            )
            assert (await gha.propose(issuance("GHA01-1", 1, 100))).accepted

    run(body)


def test_the_batch_client_falls_back_to_unary_calls_where_batches_are_not_served(
    pki: Path, tmp_path: Path
) -> None:
    async def body() -> None:
        async with running_hub(pki, tmp_path) as (_, registries):
            gha = registries["GHA01"]
            channel = gha.channel
            proposals = [
                gha.seal(T.TransactionProposal(transaction=issuance(f"GHA01-{n}", n * 10, n * 10)))
                for n in range(1, 4)
            ]
            items = [("ProposeTransaction", proposal) for proposal in proposals]
            # A batch RPC the hub does not serve: UNIMPLEMENTED, then one call each.
            unserved = BatchClient(channel, "article6.v1.Hub", "NoSuchBatch")
            results = await unserved.send(items, timeout=10)
            served = await BatchClient(channel, "article6.v1.Hub", "SubmitBatch").send(
                [*items, ("ProposeTransaction", proposals[0])], timeout=10
            )
            replies = [r for r in [*results, *served] if isinstance(r, E.Envelope)]
            assert len(replies) == 7
            # Answered from the record the first time made: the same bytes both ways.
            assert [r.SerializeToString() for r in replies[3:6]] == [
                r.SerializeToString() for r in replies[:3]
            ]
            assert replies[6] == replies[3]

    run(body)


def test_a_lone_message_goes_as_a_batch_of_one_to_a_peer_that_serves_batches(
    pki: Path, tmp_path: Path
) -> None:
    async def body() -> None:
        async with running_hub(pki, tmp_path) as (hub, registries):
            gha = registries["GHA01"]
            client = BatchClient(gha.channel, "article6.v1.Hub", "SubmitBatch")
            proposal = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-1", 1, 10)))
            (reply,) = await client.send([("ProposeTransaction", proposal)], timeout=10)
            assert isinstance(reply, E.Envelope)

            def calls(method: str) -> float:
                labels = {"service": "article6.v1.Hub", "method": method, "code": "OK"}
                value = hub.metrics_registry.get_sample_value("a6_rpc_requests_total", labels)
                return value or 0.0

            assert (calls("SubmitBatch"), calls("ProposeTransaction")) == (1, 0)

    run(body)
