"""Keys and access at a running hub over mutual TLS: signing-key rotation with overlap, and
per-registry rate limits."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from article6.codes import Code
from article6.keys import DirectoryKey, SigningKey, key_file_text, read_key_file
from article6.pki import RegistryFiles, rotate_signing_key
from article6.ratelimit import Limit, RateLimiter
from article6.v1 import transaction_pb2
from tests.builders import issuance
from tests.integration.test_hub_rpc import refusal, run, running_hub

T = transaction_pb2


@pytest.fixture
def own_pki(pki: Path, tmp_path: Path) -> Path:
    """A copy of the session's PKI that a test may rotate keys in."""
    return Path(shutil.copytree(pki, tmp_path / "pki"))


def expire(pki: Path, key_id: str, at: datetime) -> None:
    """End a key's validity at ``at`` in keys.toml, as the end of an overlap does."""
    keys = [
        replace(key, not_after=at) if key.key_id == key_id else key
        for key in read_key_file(pki / "keys.toml").all()
    ]
    (pki / "keys.toml").write_text(key_file_text(keys))


def test_a_rotated_key_overlaps_then_is_refused(own_pki: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(own_pki, tmp_path) as (hub, registries):
            gha = registries["GHA01"]
            old_key = gha.key
            assert (await gha.propose(issuance("GHA01-1", 1, 10))).accepted
            old, new = rotate_signing_key(own_pki, "GHA01", overlap=timedelta(hours=1))
            assert (old, new) != (new, old)
            hub.reload_keys()  # what SIGHUP does
            gha.key = SigningKey.from_pem(RegistryFiles(own_pki, "GHA01").signing_key.read_bytes())
            assert gha.key.key_id == new
            assert (await gha.propose(issuance("GHA01-2", 11, 20))).accepted  # new key
            gha.key = old_key
            assert (await gha.propose(issuance("GHA01-3", 21, 30))).accepted  # old: overlap
            expire(own_pki, old, datetime.now(UTC) - timedelta(seconds=1))
            hub.reload_keys()
            late = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-4", 31, 40)))
            assert await refusal(gha.hub.ProposeTransaction(late, timeout=10)) == (
                grpc.StatusCode.UNAUTHENTICATED,
                Code.KEY_NOT_VALID_NOW,
            )
            gha.key = SigningKey.from_pem(RegistryFiles(own_pki, "GHA01").signing_key.read_bytes())
            assert (await gha.propose(issuance("GHA01-4", 31, 40))).accepted

    run(body)


def test_a_key_file_that_does_not_parse_leaves_the_keys_as_they_were(
    own_pki: Path, tmp_path: Path
) -> None:
    async def body() -> None:
        async with running_hub(own_pki, tmp_path) as (hub, registries):
            (own_pki / "keys.toml").write_text("[[key]\nbroken")
            hub.reload_keys()
            assert (await registries["GHA01"].propose(issuance("GHA01-1", 1, 10))).accepted

    run(body)


def test_a_registry_over_its_rate_is_refused_and_others_are_not(pki: Path, tmp_path: Path) -> None:
    async def body() -> None:
        limits = {"GHA01": Limit(rate=0.01, burst=3)}  # 3 at once, then one per 100 s
        async with running_hub(pki, tmp_path, limits=limits) as (hub, registries):
            gha, che = registries["GHA01"], registries["CHE01"]
            for number in range(1, 4):
                assert (await gha.propose(issuance(f"GHA01-{number}", number, number))).accepted
            over = gha.seal(T.TransactionProposal(transaction=issuance("GHA01-4", 4, 4)))
            assert await refusal(gha.hub.ProposeTransaction(over, timeout=10)) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                Code.RATE_LIMITED,
            )
            # A batch from a caller with nothing left is turned away before it is parsed:
            # these bytes are no EnvelopeBatch, and still the answer is 1041, not 1010.
            raw_batch = gha.channel.unary_unary("/article6.v1.Hub/SubmitBatch", None, None)
            assert await refusal(raw_batch(b"\x0a\xff\xff\xff", timeout=10)) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                Code.RATE_LIMITED,
            )
            for _ in range(5):  # CHE01 has no limit
                query = che.seal(T.StatusQuery(transaction_id="CHE01-1"))
                assert await che.hub.GetTransactionStatus(query, timeout=10)
            assert hub.database.read_now(
                lambda c: c.exec_driver_sql(
                    "SELECT count(*) FROM transactions WHERE transaction_id = 'GHA01-4'"
                ).scalar_one()
            ) == 0  # fmt: skip

    run(body)


def test_connections_that_never_start_tls_are_closed_and_registries_get_in_again(
    pki: Path, tmp_path: Path
) -> None:
    """Idle sockets that never speak TLS cannot lock registries out: they count against a
    bound, and each is closed once the handshake deadline passes."""

    async def body() -> None:
        async with running_hub(
            pki, tmp_path, handshake_timeout_seconds=1.0, max_connections=32
        ) as (hub, registries):
            host, _, port = hub.config.listen.rpartition(":")
            idle = [await asyncio.open_connection(host, int(port)) for _ in range(48)]
            # Every one is closed by the hub: the first 32 at the handshake deadline, the
            # rest (over the bound) at once.
            for reader, _ in idle:
                assert await asyncio.wait_for(reader.read(), timeout=10) == b""
            for _, writer in idle:
                writer.close()
            receipt = await registries["GHA01"].propose(issuance("GHA01-1", 1, 10))
            assert receipt.accepted

    run(body)


def test_the_bucket_refills_at_its_rate() -> None:
    limiter = RateLimiter(Limit(rate=2, burst=2), {"SLOW": Limit(rate=0.5, burst=1)})
    assert [limiter.admit("GHA01", 0.0) for _ in range(3)] == [True, True, False]
    assert limiter.admit("GHA01", 0.4) is False  # 0.8 of a token
    assert limiter.admit("GHA01", 0.5) is True
    assert [limiter.admit("SLOW", t) for t in (0.0, 1.0, 2.0, 2.1)] == [True, False, True, False]
    assert RateLimiter(None).admit("ANY", 0.0)
    assert not RateLimiter(None).active
    with pytest.raises(AssertionError):
        Limit(rate=0, burst=1)


def test_rotation_keeps_other_registries_keys(own_pki: Path) -> None:
    before = {key.key_id: key for key in read_key_file(own_pki / "keys.toml").all()}
    old, new = rotate_signing_key(own_pki, "CHE01", overlap=timedelta(hours=2))
    after = {key.key_id: key for key in read_key_file(own_pki / "keys.toml").all()}
    assert set(after) == {*before, new}
    assert after[old].not_after is not None
    assert all(after[k] == before[k] for k in before if k != old)
    assert isinstance(after[new], DirectoryKey)
    assert after[new].not_after is None
    assert (own_pki / "CHE01" / f"signing.key.{old}").exists()
