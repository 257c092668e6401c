"""Fuzzing the hub's Hub service in process: a short seeded run of every mutation kind, and
hypothesis choosing the mutants (``make fuzz`` runs a million)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.mutations import MUTATORS
from fuzz.run import fuzz
from fuzz.target import HubTarget


def test_a_seeded_run_finds_no_crash_and_no_state_change(hub_database_url: str) -> None:
    stats = asyncio.run(fuzz(1500, seed=11, url=hub_database_url))
    assert stats.failures == []
    assert stats.inputs == 1500
    assert set(stats.mutators) >= {"envelope bytes", "fields, re-signed", "payload after signing"}
    assert stats.windows == 30
    assert stats.refusals  # the envelope layer was reached
    assert stats.rejected  # and so were the transaction checks


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubTarget]:
    hub = HubTarget(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'hub.db'}")
    asyncio.run(hub.prepare())
    yield hub
    hub.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32),
    mutator=st.sampled_from([m for m, _ in MUTATORS]),
    seed_index=st.integers(0, 5),
    identity=st.sampled_from(["GHA01", "CHE01", "XYZ01"]),
)
def test_any_mutant_is_answered_with_a_code_or_a_receipt(
    target: HubTarget, seed: int, mutator: object, seed_index: int, identity: str
) -> None:
    rpc, sender, message = target.seed(seed_index)
    mutant = mutator(random.Random(seed), message, target.keys[sender])  # type: ignore[operator]
    before = target.fingerprint()
    answer = asyncio.run(target.feed(rpc, mutant.raw, identity))
    if answer.code is not None:  # refused: nothing at all changed
        assert target.fingerprint() == before
    elif answer.receipt is not None and not answer.accepted:
        assert answer.receipt.results
        assert target.fingerprint()[0] == before[0]  # rejected: the ledger is as it was
