"""Every console script answers --version with its release and protocol version, and --help
with a description of what it is, in plain text (no reST markup)."""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from article6.cli import main as article6
from article6.config_check import ConfigError
from article6.help import undescribed
from article6.model import Status
from article6.node import store
from article6.process import command_line
from article6.sql import shown_url
from article6.v1 import admin_pb2, transaction_pb2, units_pb2
from demo.network import MECHANISM, Network, free_port
from gateway.__main__ import main as hub
from gateway.admin_cli import _context, _discrepancy_line, _reconcile, _run_line
from gateway.admin_cli import main as admin
from international_registry.__main__ import main as international
from mechanism_registry_adapter.__main__ import main as mechanism
from party_registry_stub import accounts
from party_registry_stub.__main__ import main as registry
from tests.builders import CHE_ACCOUNT, block, transaction

T = transaction_pb2
SCRIPTS: dict[str, Callable[[list[str]], int]] = {
    "article6": article6, "article6-hub": hub, "article6-admin": admin,
    "article6-registry": registry, "article6-ir": international,
    "article6-mechanism": mechanism,
}  # fmt: skip


@pytest.mark.parametrize("prog", sorted(SCRIPTS))
def test_version_and_help(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        SCRIPTS[prog](["--version"])
    assert done.value.code == 0
    assert re.fullmatch(rf"{prog} \S+ \(protocol \d+\.\d+\)\n", capsys.readouterr().out)
    with pytest.raises(SystemExit) as done:
        SCRIPTS[prog](["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert f"usage: {prog}" in shown
    assert "``" not in shown


def test_each_registry_says_what_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    said = {}
    for prog in ("article6-registry", "article6-ir", "article6-mechanism"):
        with pytest.raises(SystemExit):
            SCRIPTS[prog](["--help"])
        said[prog] = capsys.readouterr().out.split("\n\n")[1]
    assert len(set(said.values())) == 3, said


def test_serials_that_make_no_range_are_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for wrong in ("10-5", "0-5", "x-9", "5-x"):
        with pytest.raises(SystemExit) as done:
            registry(["issue", "--config", "c.toml", "--account", "A", "--vintage", "2024",
                      "--serials", wrong])  # fmt: skip
        assert done.value.code == 2
        said = capsys.readouterr().err.strip().splitlines()[-1]
        assert said.startswith("article6-registry issue: error: argument --serials: ")
        assert "Traceback" not in said


def test_an_unknown_log_level_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        hub(["serve", "--config", "hub.toml", "--log-level", "verbose"])
    assert done.value.code == 2
    assert "invalid choice: 'VERBOSE'" in capsys.readouterr().err


def test_a_reader_that_stops_and_ctrl_c_end_a_command_quietly() -> None:
    # A command printing far more than a pipe holds, read by ``head``, which stops early.
    chatty = ("import sys; from article6.process import command_line\n"
              "@command_line\ndef main() -> int:\n    for _ in range(10**6): print('row ' * 20)\n"
              "    return 0\nsys.exit(main())")  # fmt: skip
    piped = subprocess.run(  # noqa: S602 (a fixed pipeline of our own code)
        f"{sys.executable} -c \"{chatty}\" | head -c 10", shell=True, capture_output=True,
        text=True, check=False, timeout=60,
    )  # fmt: skip
    assert piped.stdout == "row row ro"
    assert piped.stderr == ""

    @command_line
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert interrupted() == 130


def test_the_admin_connection_comes_from_a_context_then_the_environment_then_flags(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "article6"
    folder.mkdir()
    (folder / "contexts.toml").write_text(
        '[staging]\nendpoint = "10.0.0.5:7001"\npki = "/etc/a6/pki"\nidentity = "ALICE"\n'
    )
    environment = {"XDG_CONFIG_HOME": str(tmp_path), "ARTICLE6_CONTEXT": "staging"}
    assert _context(environment) == {"endpoint": "10.0.0.5:7001", "pki": "/etc/a6/pki",
                                     "identity": "ALICE"}  # fmt: skip
    environment["ARTICLE6_ADMIN_ENDPOINT"] = "127.0.0.1:7001"
    assert _context(environment)["endpoint"] == "127.0.0.1:7001"
    assert _context({"ARTICLE6_PKI": "run/pki"}) == {"pki": "run/pki"}
    with pytest.raises(ConfigError, match="no context 'prod'"):
        _context({**environment, "ARTICLE6_CONTEXT": "prod"})


class ReconcilingStub:
    """The admin service as ``article6-admin reconcile`` sees it: a run that takes
    ``waits`` progress intervals, then ends with ``status``."""

    def __init__(self, status: int, waits: int = 0) -> None:
        self.status, self.waits = status, waits
        self.RunReconciliation = self  # the stub's method, called as .future(...)

    def future(self, request: Any, timeout: float) -> Any:
        return self

    def result(self, timeout: float) -> Any:
        if self.waits:
            self.waits -= 1
            raise grpc.FutureTimeoutError
        run = admin_pb2.ReconciliationRun(run_id="RUN-1", registry="CHE01")
        run.status = self.status  # type: ignore[assignment]
        return admin_pb2.RunReconciliationResponse(run=run)

    def ListReconciliationRuns(self, request: Any, timeout: float) -> Any:
        run = admin_pb2.ReconciliationRun(run_id="RUN-1", registry="CHE01", open=True,
                                          detail="descending the tree: depth 2 of 5")  # fmt: skip
        return admin_pb2.ListReconciliationRunsResponse(runs=[run])


def test_reconcile_exits_1_when_the_ledgers_disagree() -> None:
    arguments = argparse.Namespace(registry="CHE01", timeout=5.0, json=False)
    assert _reconcile(ReconcilingStub(5), arguments)[1] == 0  # type: ignore[arg-type]
    for disagreeing in (3, 4, 7):
        lines, status = _reconcile(ReconcilingStub(disagreeing), arguments)  # type: ignore[arg-type]
        assert status == 1
        assert "inconsistent" in str(lines) or "denied" in str(lines)


def test_a_long_reconciliation_says_where_it_is_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    arguments = argparse.Namespace(registry="CHE01", timeout=60.0, json=False)
    _, status = _reconcile(ReconcilingStub(5, waits=2), arguments)  # type: ignore[arg-type]
    assert status == 0
    said = capsys.readouterr()
    assert said.out == ""
    progress = said.err.splitlines()
    assert len(progress) == 2
    assert re.fullmatch(r"reconciling CHE01, \d+ s: RUN-1: descending the tree: depth 2 of 5",
                        progress[0])  # fmt: skip


def test_admin_lines_say_names_not_numbers() -> None:
    block = units_pb2.UnitBlock(originating_registry="GHA01", serial_first=1, serial_last=9,
                                unit_kind=units_pb2.UNIT_KIND_ITMO,
                                state=units_pb2.UNIT_STATE_USED)  # fmt: skip
    item = admin_pb2.Discrepancy(discrepancy_id=7, registry="CHE01", side="hub", open=True)
    item.block.block.CopyFrom(block)
    line = _discrepancy_line(item)
    assert " itmo used " in line
    assert "kind" not in line
    run = admin_pb2.ReconciliationRun(run_id="RUN-1", registry="CHE01")
    run.status = 4  # type: ignore[assignment]
    assert "CHE01    blocks inconsistent" in _run_line(run)
    run.started_at.FromMilliseconds(1_000)
    run.released_at.FromMilliseconds(1_062)
    assert " held 62 ms " in _run_line(run)


def test_a_database_url_in_a_log_line_hides_its_password() -> None:
    shown = shown_url("postgresql+psycopg://hub:s3cret@db.example:5432/article6")
    assert "s3cret" not in shown
    assert shown.startswith("postgresql+psycopg://hub:***@db.example")


def test_what_a_user_gets_wrong_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    network = Network(tmp_path, registries=("GHA01", MECHANISM))
    network.write()
    names = {main: prog for prog, main in SCRIPTS.items()}

    def said(main: Callable[[list[str]], int], *argv: str, status: int) -> str:
        monkeypatch.setattr(sys, "argv", [f"/venv/bin/{names[main]}", *argv])
        assert main(list(argv)) == status
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    def database(config: Path, url: str) -> Path:
        text = re.sub(r'^database = ".*"$', f'database = "{url}"', config.read_text(),
                      flags=re.MULTILINE)  # fmt: skip
        config.write_text(text)
        return config

    gha01 = network.config("GHA01")
    assert said(registry, "remove-space", "--config", str(gha01), "--space", "GHA01",
                "--reason", "x", status=2) == (
        "GHA01 is this registry's own serial space; it is never removed"
    )  # fmt: skip
    unwritable = database(gha01, str(tmp_path / "missing" / "gha01.db"))
    assert said(registry, "holdings", "--config", str(unwritable), status=1) == (
        f"article6-registry: cannot open database sqlite:///{tmp_path}/missing/gha01.db: "
        "No such file or directory"
    )
    nowhere = database(
        tmp_path / "hub.toml", f"postgresql+psycopg://a6:pw@127.0.0.1:{free_port()}/hub"
    )
    line = said(hub, "audit", "--config", str(nowhere), status=1)
    assert line.startswith("article6-hub: cannot open database postgresql+psycopg://a6:***@")
    assert "pw" not in line
    adapter = network.config(MECHANISM)
    missing = tmp_path / "instructions.jsonl"
    assert said(mechanism, "import", str(missing), "--config", str(adapter), status=2) == (
        f"article6-mechanism: {missing}: No such file or directory"
    )
    assert said(article6, "pki", "rotate", "--pki", str(network.pki), "--registry", "NOPE",
                status=2) == f"article6: {network.pki} holds no signing key for NOPE"  # fmt: skip


@pytest.mark.parametrize("prog", sorted(SCRIPTS))
def test_every_option_is_described_with_its_default(
    prog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[argparse.ArgumentParser] = []

    def keep(parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        built.append(parser)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", keep)
    with pytest.raises(SystemExit):
        SCRIPTS[prog]([])
    (parser,) = built
    assert undescribed(parser) == []
    shown = parser.format_help()
    assert shown.count("\n  ") > 2
    if prog == "article6-admin":  # an option with a default says it
        (transactions,) = [
            action.choices["transactions"]
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
        ]
        assert "(default: 50)" in transactions.format_help()


def test_removing_a_test_space_cancels_its_waiting_transactions_and_logs_each_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "registry")
    network = Network(tmp_path, registries=("CHE01",))
    network.write()
    config = str(network.config("CHE01"))
    assert registry(["open-account", "--config", config, "--ca", "CA0001"]) == 0
    books = store.open_database(f"sqlite:///{tmp_path / 'che01.db'}", accounts.metadata)
    waiting = transaction("KIT01-1", T.TRANSACTION_TYPE_EXTERNAL_TRANSFER, [block(1, 10, "KIT01")],
                          sender="KIT01", acquirer="CHE01", target=CHE_ACCOUNT)  # fmt: skip
    with books.begin() as connection:
        store.put_transaction(connection, "KIT01-1", role="acquirer", status=Status.ACCEPTED,
                              body=waiting.SerializeToString())  # fmt: skip
    capsys.readouterr()
    argv = ["remove-space", "--config", config, "--space", "KIT01", "--reason", "kit run"]
    assert registry(argv) == 0
    assert "cancelled 1 waiting transaction(s)" in capsys.readouterr().out
    with books.connect() as connection:
        removed = store.get_transaction(connection, "KIT01-1")
    books.dispose()
    assert removed is not None
    assert removed.status is Status.CANCELLED
    assert [r.getMessage() for r in caplog.records] == ["KIT01-1 CANCELLED"]
