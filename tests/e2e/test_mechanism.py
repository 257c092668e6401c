"""The mechanism registry adapter end to end: real processes (hub, international registry,
adapter) over mutual TLS, A6.4ERs arriving in the IR as ITMOs, every refusal, crashes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest

from article6.codes import Code
from article6.identifiers import format_account_id
from article6.pki import RegistryFiles
from article6.tls import TlsMaterial, channel_credentials, channel_options
from article6.v1 import admin_pb2, mechanism_pb2, reconciliation_pb2, transaction_pb2
from article6.v1 import mechanism_pb2_grpc as mechanism_grpc
from demo.network import INTERNATIONAL, MECHANISM, Network
from mechanism_registry_adapter import feed
from mechanism_registry_adapter.formats import write_json_lines
from tests.e2e.helpers import assert_ledgers_agree, wait_for

M = mechanism_pb2
T = transaction_pb2
FINAL = {M.INSTRUCTION_STATE_REFUSED, M.INSTRUCTION_STATE_COMPLETED, M.INSTRUCTION_STATE_FAILED}


@pytest.fixture
def mechanism_network(tmp_path: Path) -> Iterator[Network]:
    with Network(tmp_path, registries=(INTERNATIONAL, MECHANISM)).running() as network:
        yield network


def ir_account(network: Network, party: str = "SGP") -> str:
    ir = partial(network.registry_cli, INTERNATIONAL)
    request = ir("request-section", "--party", party, "--submitted-by", "NFP",
                 "--administrator", "PSA")  # fmt: skip
    ir("validate-request", request)
    ir("open-section", request)
    ir("verify-section", party)
    return ir("open-account", "--party", party)


def instructions(
    account: str, count: int, gross: int, issuance_id: str = "ISS-1", prefix: str = "I-",
    first_serial: int = 1,
) -> list[M.FirstTransferInstruction]:  # fmt: skip
    shared = feed.template(
        activity_id="A64-GHA-0001", host_party="GHA", vintage=2025,
        authorization_id="GHA-A64-0001", acquiring_account=account,
    )  # fmt: skip
    record = feed.issuance(issuance_id, first_serial, gross)
    return feed.instructions(record, shared, count, prefix)


def submit(network: Network, message: M.FirstTransferInstruction) -> M.SubmitInstructionResponse:
    with network.intake() as intake:
        reply: M.SubmitInstructionResponse = intake.SubmitInstruction(
            M.SubmitInstructionRequest(instruction=message), timeout=10
        )
        return reply


def outcome(network: Network, instruction_id: str) -> M.InstructionOutcome:
    with network.intake() as intake:
        reply = intake.GetInstruction(M.GetInstructionRequest(instruction_id=instruction_id))
    assert reply.found, instruction_id
    return reply.outcome


def settled(network: Network, instruction_id: str) -> M.InstructionOutcome:
    wait_for(lambda: outcome(network, instruction_id).state in FINAL, 60, instruction_id)
    return outcome(network, instruction_id)


def hub_transactions(network: Network, kind: int = 0, status: int = 0) -> list[Any]:
    """The hub's transactions (at most 1,000), of one type and status if given."""
    request = admin_pb2.ListTransactionsRequest(limit=1_000)
    request.type, request.status = kind, status  # type: ignore[assignment]
    with network.admin() as admin:
        reply = admin.ListTransactions(request, timeout=30)
    return list(reply.transactions)


def ir_holdings(network: Network) -> list[dict[str, Any]]:
    return [row for row in network.registry_json(INTERNATIONAL, "holdings")
            if row["space"] == MECHANISM]  # fmt: skip


def hub_reconciles(network: Network, registry: str) -> int:
    """The status of a reconciliation run of the hub with ``registry`` (a run is denied a
    start while completion notices to it are still on their way)."""
    with network.admin() as admin:
        request = admin_pb2.RunReconciliationRequest(registry=registry)
        status: int = admin.RunReconciliation(request, timeout=120).run.status
    return status


def _reconciles_clean(network: Network, registry: str, done: int) -> bool:
    return hub_reconciles(network, registry) == done


def reconcile(network: Network) -> tuple[int, dict[str, Any]]:
    command = [sys.executable, "-m", "mechanism_registry_adapter", "reconcile-leg",
               "--config", str(network.config(MECHANISM)), "--json"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=network.folder, check=False)
    return done.returncode, json.loads(done.stdout)


def variant(
    base: M.FirstTransferInstruction, instruction_id: str, **paths: int
) -> M.FirstTransferInstruction:
    """A copy of ``base`` under another id, with fields changed (``issuance__omge__...``)."""
    message = M.FirstTransferInstruction()
    message.CopyFrom(base)
    message.instruction_id = instruction_id
    for path, value in paths.items():
        *parents, leaf = path.split("__")
        holder: Any = message
        for part in parents:
            holder = getattr(holder, part)
        setattr(holder, leaf, value)
    return message


def assert_refused(network: Network, message: M.FirstTransferInstruction, code: Code) -> None:
    reply = submit(network, message)
    assert reply.outcome.state == M.INSTRUCTION_STATE_REFUSED, message.instruction_id
    assert [r.code for r in reply.outcome.results] == [code], reply.outcome.results


def check_refusals(network: Network, account: str, first: M.FirstTransferInstruction) -> None:
    """Each refusal with its code, changing nothing at the hub or in the IR."""
    before = (len(hub_transactions(network)), ir_holdings(network))
    fresh = instructions(account, 1, 1_000, "ISS-2", "R-", first_serial=20_001)[0]
    sop, omge = fresh.issuance.share_of_proceeds, fresh.issuance.omge
    contribution = variant(fresh, "R-1")
    contribution.authorization.kind = M.AER_AUTHORIZATION_KIND_MITIGATION_CONTRIBUTION
    backwards = variant(fresh, "R-4")
    backwards.blocks[0].serial_first = backwards.blocks[0].serial_last + 1
    overlapping = variant(fresh, "R-5")
    overlapping.blocks.add(serial_first=20_001, serial_last=20_002)
    reused = variant(first, first.instruction_id, vintage=2024)
    cases = [
        (contribution, Code.A64ER_NOT_AUTHORIZED),
        (variant(fresh, "R-2", issuance__share_of_proceeds__serial_first=sop.serial_first + 1),
         Code.SHARE_OF_PROCEEDS_NOT_APPLIED),
        (variant(fresh, "R-3", issuance__omge__serial_first=omge.serial_first + 1),
         Code.OMGE_NOT_APPLIED),
        (backwards, Code.SERIAL_RANGE_INVALID),
        (overlapping, Code.BLOCKS_OVERLAP),
        (instructions(account, 1, 10_000, prefix="A-")[0], Code.SERIALS_ALREADY_FORWARDED),
        (variant(fresh, "R-6", vintage=2019, authorization__vintage_first=2019),
         Code.VINTAGE_IMPLAUSIBLE),
        (reused, Code.INSTRUCTION_ID_REUSED),
    ]  # fmt: skip
    for message, code in cases:
        assert_refused(network, message, code)
    assert (len(hub_transactions(network)), ir_holdings(network)) == before

    # Only the mechanism registry's own system may call the intake.
    other = TlsMaterial.load(RegistryFiles(network.pki, INTERNATIONAL))
    with grpc.secure_channel(
        network.intake_endpoint, channel_credentials(other), options=channel_options(MECHANISM)
    ) as channel:
        stub = mechanism_grpc.MechanismIntakeServiceStub(channel)
        with pytest.raises(grpc.RpcError) as denied:
            stub.SubmitInstruction(M.SubmitInstructionRequest(instruction=fresh), timeout=10)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_aers_arrive_as_itmos_every_refusal_changes_nothing_and_the_leg_reconciles(
    mechanism_network: Network,
) -> None:
    network = mechanism_network
    account = ir_account(network)
    first, second = instructions(account, 2, 10_000)
    for message in (first, second):
        reply = submit(network, message)
        assert (reply.replayed, list(reply.outcome.results)) == (False, [])
    assert settled(network, "I-000001").state == M.INSTRUCTION_STATE_COMPLETED
    assert settled(network, "I-000002").state == M.INSTRUCTION_STATE_COMPLETED
    assert_ledgers_agree(network, settle_seconds=60)
    (held,) = ir_holdings(network)
    assert (held["serial_first"], held["serial_last"], held["unit_kind"]) == (1, 9_300, "itmo")
    assert (held["first_transferring_party"], held["cooperative_approach"]) == ("GHA", "CA6400")
    assert held["authorization_id"] == "GHA-A64-0001"
    # A replayed instruction is answered with its outcome and changes nothing anywhere.
    before = (len(hub_transactions(network)), ir_holdings(network))
    reply = submit(network, first)
    assert (reply.replayed, reply.outcome.state) == (True, M.INSTRUCTION_STATE_COMPLETED)
    assert (len(hub_transactions(network)), ir_holdings(network)) == before
    check_refusals(network, account, first)

    # The acquiring registry refuses an unknown account: the instruction fails with its code,
    # and the same serials instructed again arrive without being recorded twice.
    fresh = instructions(account, 1, 1_000, "ISS-2", "R-", first_serial=20_001)[0]
    missing = variant(fresh, "R-7")
    missing.acquiring_account = format_account_id(INTERNATIONAL, 999)
    failed = settled(network, submit(network, missing).outcome.instruction_id)
    assert failed.state == M.INSTRUCTION_STATE_FAILED
    assert [r.code for r in failed.results] == [Code.ACQUIRING_ACCOUNT_NOT_FOUND]
    retried = settled(network, submit(network, variant(fresh, "R-8")).outcome.instruction_id)
    assert retried.state == M.INSTRUCTION_STATE_COMPLETED
    assert not retried.issuance_transaction_id
    assert_ledgers_agree(network, settle_seconds=60)

    code, report = reconcile(network)
    assert (code, report["clean"], report["forwarded_units"]) == (0, True, 9_300 + 930)
    samples = network.scrape(MECHANISM)
    by_state = {dict(labels)["state"]: value for (name, labels), value in samples.items()
                if name == "a6_mechanism_instructions"}  # fmt: skip
    assert (by_state["completed"], by_state["failed"], by_state["refused"]) == (3, 1, 7)
    assert (by_state["issuing"], by_state["forwarding"]) == (0, 0)
    # Someone changes the IR's records behind its back: the leg finds exactly that block.
    with sqlite3.connect(network.folder / "unir.db") as database:
        database.execute(
            "UPDATE holdings SET vintage = 2024 WHERE space = ? AND serial_first = "
            "(SELECT MIN(serial_first) FROM holdings WHERE space = ?)", (MECHANISM, MECHANISM),
        )  # fmt: skip
    code, report = reconcile(network)
    assert code == 1
    assert [(d["kind"], d["reference"]) for d in report["discrepancies"]] == [
        ("not-forwarded", account)
    ]


def _count(database: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return int(connection.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_bulk_import_survives_sigkill_of_the_importer_and_the_adapter(
    mechanism_network: Network,
) -> None:
    """1,000 instructions: the import is killed part way, then the adapter is killed while
    forwarding; after both restart every instruction ends exactly once."""
    network = mechanism_network
    account = ir_account(network)
    count, gross = 1_000, 100_000  # a net of 93,000: 93 units per instruction
    bulk = network.folder / "bulk.jsonl"
    bulk.write_text(write_json_lines(instructions(account, count, gross)))
    database = network.folder / f"{MECHANISM.lower()}.db"
    command = [sys.executable, "-m", "mechanism_registry_adapter", "import", str(bulk),
               "--config", str(network.config(MECHANISM)), "--chunk", "1"]  # fmt: skip
    importer = subprocess.Popen(command, cwd=network.folder, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    taken = "SELECT COUNT(*) FROM instructions"
    wait_for(lambda: _count(database, taken) >= 100, 60, "the import to start")
    importer.send_signal(signal.SIGKILL)
    _, progress = importer.communicate(timeout=10)
    assert "instructions read (taken " in progress  # a line per chunk, on stderr
    assert _count(database, taken) < count, "the import ended before it could be killed"

    completed = "SELECT COUNT(*) FROM instructions WHERE state = 4"
    wait_for(lambda: _count(database, completed) >= 20, 120, "some instructions to complete")
    assert network.stop(MECHANISM, kill=True) == -signal.SIGKILL
    assert _count(database, completed) < count

    summary = network.registry_cli(MECHANISM, "import", str(bulk)).splitlines()[-1]
    numbers = dict(zip(summary.split()[::2], map(int, summary.split()[1::2]), strict=True))
    assert numbers["taken"] + numbers["replayed"] == count
    assert (numbers["refused"], numbers["unreadable"]) == (0, 0)
    network.start(MECHANISM)
    line = network.registry_cli(MECHANISM, "wait-instructions", "--timeout", "400")
    assert line == f"completed {count}"

    # Exactly once: one block of the whole net in the IR (once the hub's last completion
    # notices reach it), one first transfer per instruction.
    whole = [(1, 93_000, 93_000)]

    def arrived() -> list[tuple[int, int, int]]:
        return [(h["serial_first"], h["serial_last"], h["units"]) for h in ir_holdings(network)]

    wait_for(lambda: arrived() == whole, 120, "the IR to apply every completion")
    assert arrived() == whole
    for kind in (T.TRANSACTION_TYPE_ISSUANCE, T.TRANSACTION_TYPE_FIRST_TRANSFER):
        assert len(hub_transactions(network, kind, T.TRANSACTION_STATUS_COMPLETED)) == count
        for status in (T.TRANSACTION_STATUS_REJECTED, T.TRANSACTION_STATUS_TERMINATED,
                       T.TRANSACTION_STATUS_CANCELLED, T.TRANSACTION_STATUS_CHECKED):  # fmt: skip
            assert hub_transactions(network, kind, status) == [], (kind, status)
    assert_ledgers_agree(network, settle_seconds=60)
    code, report = reconcile(network)
    assert (code, report["forwarded_units"], report["taken_in_units"]) == (0, 93_000, 93_000)
    # And the hub's own reconciliation with both registries comes back clean.
    done = reconciliation_pb2.RECONCILIATION_STATUS_COMPLETED
    for registry in (INTERNATIONAL, MECHANISM):
        clean = partial(_reconciles_clean, network, registry, done)
        wait_for(clean, 60, f"a clean run with {registry}")


def test_instructions_that_time_out_say_so_and_retry_failed_completes_them(
    tmp_path: Path,
) -> None:
    """The IR is down past the acceptance time-out: the instructions fail (4012), the adapter
    logs a warning for each and `wait-instructions` exits 1; once the IR is back,
    `retry-failed` starts them again and they complete, each serial forwarded once."""
    network = Network(tmp_path, registries=(INTERNATIONAL, MECHANISM),
                      acceptance_timeout_seconds=4.0)  # fmt: skip
    with network.running():
        account = ir_account(network)
        bulk = network.folder / "bulk.jsonl"
        bulk.write_text(write_json_lines(instructions(account, 3, 3_000)))
        network.stop(INTERNATIONAL)
        network.registry_cli(MECHANISM, "import", str(bulk))
        wait = partial(network.registry_cli, MECHANISM, "wait-instructions", "--timeout", "120")
        assert wait(check=False) == "failed 3"
        with pytest.raises(RuntimeError, match="3 instructions failed"):
            wait()
        warnings = [json.loads(line) for line in (network.logs / "a64mr.log").read_text()
                    .splitlines() if "retry-failed" in line]  # fmt: skip
        assert len(warnings) == 3
        assert all(w["level"] == "warning" and "4012" in w["msg"] for w in warnings)

        network.start(INTERNATIONAL)
        assert network.registry_cli(MECHANISM, "retry-failed") == "retried 3 not_retried 0"
        assert wait() == "completed 3"
        # Nothing failed is left to retry, and every serial arrived exactly once.
        assert network.registry_cli(MECHANISM, "retry-failed") == "retried 0 not_retried 0"
        net = sum(h["serial_last"] - h["serial_first"] + 1 for h in ir_holdings(network))
        assert net == 3 * 930
        assert_ledgers_agree(network, settle_seconds=60)
