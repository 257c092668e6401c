"""The benchmarks' load helpers: each call made once, latency from the due instant, and the
nearest-rank percentile (pure; no timing is asserted)."""

from __future__ import annotations

import asyncio

import pytest

from bench.load import closed_loop, open_loop, percentile
from bench.transfers import Stages


def test_percentile_is_the_nearest_rank_an_observed_value() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(AssertionError):
        percentile([], 0.5)


def test_a_closed_loop_makes_each_call_once_with_the_given_calls_in_flight() -> None:
    made: list[int] = []
    in_flight, most = 0, 0

    async def call(index: int) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0)
        made.append(index)
        in_flight -= 1

    throughput = asyncio.run(closed_loop(call, 100, 8))
    assert sorted(made) == list(range(100))
    assert most == 8
    assert throughput.calls == 100


def test_an_open_loop_counts_latency_from_each_calls_due_instant() -> None:
    async def call(index: int) -> None:
        await asyncio.sleep(0.05 if index == 0 else 0)

    latencies = asyncio.run(open_loop(call, 5, rate=1000.0))
    assert len(latencies.seconds) == 5
    assert max(latencies.seconds) >= 0.05  # the slow call's own wait is in its latency
    assert latencies.offered_per_second == 1000.0


def test_a_transfers_stages_are_each_spans_median_and_p99_in_ms() -> None:
    spans = [(0.010 * i, 0.020 * i, 0.001 * i) for i in range(1, 101)]
    stages = Stages.of(spans)
    assert stages.proposal == pytest.approx((505.0, 990.0))
    assert stages.decision == pytest.approx((1010.0, 1980.0))
    assert stages.notices == pytest.approx((50.5, 99.0))
    runs = [
        stages,
        Stages((1.0, 2.0), (3.0, 4.0), (5.0, 6.0)),
        Stages((9.0, 9.0), (9.0, 9.0), (9.0, 9.0)),
    ]
    assert Stages.median(runs) == Stages((9.0, 9.0), (9.0, 9.0), (9.0, 9.0))
