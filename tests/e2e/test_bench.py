"""``make bench`` end to end at a tiny size: every benchmark runs against real processes on
SQLite and writes its table. Figures are not asserted (timings never are in tests)."""

from __future__ import annotations

import re
from pathlib import Path

from bench.__main__ import main


def test_the_benchmarks_run_and_write_their_table(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    arguments = ["--repeats", "1", "--echo", "200", "--single", "60", "--transfers", "40",
                 "--paced", "5", "--blocks", "2000", "--backlog", "200", "--aef-rows", "200",
                 "--databases", "sqlite",
                 "--output", str(output)]  # fmt: skip
    assert main(arguments) == 0
    text = output.read_text()
    rows = ["echo baseline", "single-registry transactions, hub on sqlite", "time went at half",
            "complete external transfers, hub on sqlite", "| hub on sqlite |",
            "complete external transfer, hub on sqlite | HUB", "SGP01 silent, ", "| 200 | ",
            "one block altered"]  # fmt: skip
    for row in rows:
        assert row in text, row
    assert "- machine: " in text
    stage = r"[\d.]+ / [\d.]+ ms"
    assert re.search(rf"\| hub on sqlite \| {stage} \| {stage} \| {stage} \|", text)
