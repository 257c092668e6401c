"""The before-and-after table of ``make bench BEFORE=COMMIT`` (bench/before.py) reads an
earlier commit's RESULTS.md as that commit's bench wrote it."""

from __future__ import annotations

from bench.before import Before, rate_rows, table

EARLIER = """# Benchmark results

- machine: 2 cores

| benchmark | rate (median) | runs | p50 at half rate | p99 at half rate | target |
|---|---:|---|---:|---:|---|
| echo baseline (grpc.aio unary, mTLS) | 3,569 /s | 3,392, 3,569, 3,895 | 1.0 ms | 45.1 ms |  |
| complete external transfers, hub on sqlite | 128 /s | 120, 128 | 71.6 ms | 154.0 ms | no |

| block size | 1 unit |
|---|---:|
| hub on sqlite | 16.9 ms |
"""


def test_the_earlier_rates_are_read_from_the_first_table_only() -> None:
    assert rate_rows(EARLIER) == {
        "echo baseline (grpc.aio unary, mTLS)": ("3,569 /s", "45.1 ms"),
        "complete external transfers, hub on sqlite": ("128 /s", "154.0 ms"),
    }


def test_rows_both_sides_ran_stand_side_by_side() -> None:
    after = {
        "complete external transfers, hub on sqlite": ("202 /s", "130.4 ms"),
        "complete external transfers, hub on postgresql": ("80 /s", "72.7 ms"),  # not before
    }
    lines = table(Before("35484b0", rate_rows(EARLIER)), after)
    assert lines[0].startswith("| before (35484b0) and after (this code)")
    assert lines[2:] == ["| complete external transfers, hub on sqlite | 128 /s | 202 /s | "
                         "154.0 ms | 130.4 ms |"]  # fmt: skip
