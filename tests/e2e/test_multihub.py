"""Two hub processes on one PostgreSQL database take double-spend attempts through both at
once, one of them is killed holding outbox claims, and no unit is spent twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign.multihub import run
from tests.databases import postgres_database


@pytest.mark.postgres
def test_two_hubs_never_spend_a_unit_twice(tmp_path: Path) -> None:
    with postgres_database() as url:
        outcome = run(attempts=150, seed=3, folder=tmp_path, database=url)
    assert outcome.failures == []
    assert outcome.accepted == {1: 150}
    assert outcome.kills == 1
    assert outcome.claims_at_kill > 0  # the killed hub may have held some: none was stranded
    assert outcome.invariants >= 15
