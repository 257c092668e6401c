"""The AEF end to end: a Party registry exports its own Party's workbook, the hub exports the
same Party's from its ledger, and the hub checks the Party's workbook against its ledger
through the operators' command line: consistent as exported; a copy with one deliberate error
is found, and the error is written into the copy's results column."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from openpyxl import load_workbook

from article6.aef.check import check_workbook
from article6.aef.template import template
from demo.__main__ import with_one_error
from demo.network import Network
from tests.e2e.helpers import accounts, final, transfer

YEAR = str(datetime.now(UTC).year)


def test_a_party_exports_and_the_hub_checks_its_aef(network: Network, tmp_path: Path) -> None:
    gha, che = accounts(network)
    for serials in ("1-100", "201-250"):
        assert final(network, "GHA01", transfer(network, gha, che, serials))[0] == "completed"
    workbook = tmp_path / "CHE.xlsx"
    command = [sys.executable, "-m", "party_registry_stub", "aef", "--config",
               str(network.config("CHE01")), "--year", YEAR, "--out", str(workbook)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.startswith(f"{workbook}: ")  # the results on stdout, progress on stderr
    assert "AEF: pass 2 over the books done, " in done.stderr
    assert check_workbook(workbook) == []
    ledger = network.admin_cli("aef-export", "--party", "CHE", "--year", YEAR, "--format",
                               "json", "--table", "actions")  # fmt: skip
    assert ledger.returncode == 0, ledger.stderr
    own = json.loads(network.registry_cli("CHE01", "aef", "--format", "json"))
    assert [r["first_id"] for r in json.loads(ledger.stdout)] == [r["first_id"] for r in own]

    done = network.admin_cli("aef-check", str(workbook), "--party", "CHE", "--year", YEAR)
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    assert "consistent with the hub's ledger" in done.stdout

    wrong = tmp_path / "CHE-wrong.xlsx"
    with_one_error(workbook, wrong)
    checked = tmp_path / "CHE-wrong-checked.xlsx"
    done = network.admin_cli("aef-check", str(wrong), "--party", "CHE", "--year", YEAR,
                             "--out", str(checked), "--json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    found = json.loads(done.stdout)["inconsistencies"]
    kinds = sorted((item["sheet"], item.get("row", 0), item["kind"]) for item in found)
    assert kinds == [("Table 3", 4, "differs")]
    column = template().table("actions").keys.index("consistency") + 1
    sheet = load_workbook(checked)["Table 3"]
    assert str(sheet.cell(4, column).value).startswith("Inconsistent: ids ")
    assert sheet.cell(5, column).value == "Consistent"

    unknown = network.admin_cli("aef-check", str(workbook), "--party", "SGP")
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr
    garbage = tmp_path / "notes.xlsx"
    garbage.write_bytes(b"not a workbook")
    unreadable = network.admin_cli("aef-check", str(garbage), "--party", "CHE")
    assert unreadable.returncode == 2
    assert "not an AEF workbook (.xlsx)" in unreadable.stderr
    missing = network.admin_cli("aef-check", str(tmp_path / "none.xlsx"), "--party", "CHE")
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
