"""``article6-mechanism``: run the mechanism registry adapter, and operate it.

    article6-mechanism serve --config a64mr.toml
    article6-mechanism import --config a64mr.toml FILE [--format jsonl|csv] [--chunk 200]
    article6-mechanism outcomes --config a64mr.toml [--after SEQUENCE] [--json]
    article6-mechanism instruction --config a64mr.toml INSTRUCTION_ID
    article6-mechanism wait-instructions --config a64mr.toml [--timeout 120]
    article6-mechanism retry-failed --config a64mr.toml [INSTRUCTION_ID ...]
    article6-mechanism reconcile-leg --config a64mr.toml [--json]

``import`` takes a bulk file (JSON Lines or CSV, docs/MECHANISM.md) in chunks, each chunk in
one SQL transaction; running it again after a crash takes only what is not yet taken (an
instruction already received is a replay and changes nothing). It prints one line per
refused or unreadable instruction and a summary; it exits 2 if some lines could not be read.
Long commands say where they are on stderr: ``import`` after each chunk, ``wait-instructions``
every 5 seconds, with the count in each state.
``wait-instructions`` exits 1 if any instruction failed (the hub or the acquiring registry
refused a step, or the acquirer did not answer in time: the adapter logs a warning for each);
``retry-failed`` starts failed instructions again from their first step, under the same id.
``reconcile-leg`` compares what the adapter forwarded into the international registry with
the IR's intake and holdings; it exits 1 on any discrepancy.

The config file is the shared registry config with a ``[mechanism]`` table:

    [mechanism]
    intake_listen = "127.0.0.1:7031"        # MechanismIntakeService
    intake_identities = ["A64FEED"]         # client certificates allowed to call it
    pending_account = "A64MR-1-xx"          # default: account number 1 of this registry
    cooperative_approach = "CA6400"         # the ITMOs' when an authorization names none
    deduction_rounding = "down"             # share of proceeds and OMGE: "down" or "up"
    default_acquiring_registry = "UNIR"     # when an instruction names none
    ir_admin_endpoint = "127.0.0.1:7021"    # the IR's admin service (reconcile-leg)
    ir_registry_id = "UNIR"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import Connection

from article6.codes import Code, Refusal
from article6.config_check import ConfigError
from article6.model import Status, TransactionType
from article6.node import cli, store
from article6.node.config import RegistryConfig, check_table
from article6.node.engine import RegistryEngine
from article6.process import progress
from article6.tls import TlsMaterial, channel_credentials, channel_options
from article6.unit import Unit
from article6.v1 import international_registry_pb2 as ir_pb2
from article6.v1 import international_registry_pb2_grpc as ir_grpc
from article6.v1 import mechanism_pb2
from article6.wire import stored_spec, unit_block
from mechanism_registry_adapter import book, leg
from mechanism_registry_adapter.formats import Unreadable, read_csv, read_json_lines
from mechanism_registry_adapter.instructions import InstructionState
from mechanism_registry_adapter.intake import Intake, Settings, outcome_message
from mechanism_registry_adapter.rules import MechanismRules
from mechanism_registry_adapter.server import serve

Read = mechanism_pb2.FirstTransferInstruction | Unreadable


PROGRESS_EVERY_SECONDS = 5.0  # how often wait-instructions says where it is


def _chunks(items: Iterator[Read], size: int) -> Iterator[list[Read]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _import(args: argparse.Namespace, config: RegistryConfig) -> int:
    settings = Settings.from_config(config)
    form = args.format or ("csv" if args.file.suffix.lower() == ".csv" else "jsonl")
    totals = {"taken": 0, "refused": 0, "replayed": 0, "unreadable": 0}
    today = datetime.now(UTC).date()
    started = time.monotonic()
    with args.file.open(newline="", encoding="utf-8") as handle:
        read = read_csv(handle) if form == "csv" else read_json_lines(handle)
        for chunk in _chunks(read, args.chunk):

            def take(engine: RegistryEngine, unit: Unit, chunk: list[Read] = chunk) -> list[str]:
                intake = Intake(engine, settings)
                lines = []
                for item in chunk:
                    if isinstance(item, Unreadable):
                        totals["unreadable"] += 1
                        lines.append(f"line {item.line}: unreadable: {item.error}")
                        continue
                    taken = intake.submit(unit, item, today)
                    refused = taken.record is None or taken.record.state is (
                        InstructionState.REFUSED
                    )
                    kind = "replayed" if taken.replayed else "refused" if refused else "taken"
                    totals[kind] += 1
                    if refused and not taken.replayed:
                        codes = "; ".join(f"{c} {Code(c).name} {d}" for c, d in taken.results)
                        lines.append(f"{taken.instruction_id}: refused: {codes}")
                return lines

            for line in cli.change_books(args, config, take):
                print(line)
            progress(f"{sum(totals.values()):,} instructions read "
                     f"({', '.join(f'{name} {count:,}' for name, count in totals.items())}) "
                     f"in {time.monotonic() - started:.1f} s")  # fmt: skip
    print(" ".join(f"{name} {count}" for name, count in totals.items()))
    return 2 if totals["unreadable"] else 0


def _outcome_row(record: book.Record) -> dict[str, Any]:
    outcome = outcome_message(record)
    return {
        "instruction_id": record.instruction_id,
        "state": record.state.name.lower(),
        "codes": [code for code, _ in record.results],
        "details": [detail for _, detail in record.results],
        "issuance_transaction_id": record.issuance_transaction_id or "",
        "transfer_transaction_id": record.transfer_transaction_id or "",
        "quantity": outcome.quantity,
        "sequence": record.sequence,
    }


def _outcomes(args: argparse.Namespace, config: RegistryConfig) -> int:
    records = cli.run_in_books(
        args, config, lambda r, c: book.changed_after(c, args.after, args.limit)
    )
    rows = [_outcome_row(record) for record in records]
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        codes = ",".join(str(code) for code in row["codes"])
        transfer = row["transfer_transaction_id"] or "-"
        print(f"{row['sequence']:>7} {row['instruction_id']:<16} {row['state']:<10} "
              f"{row['quantity']:>12,} {transfer:<12} {codes}")  # fmt: skip
    return 0


def _instruction(args: argparse.Namespace, config: RegistryConfig) -> int:
    record = cli.run_in_books(args, config, lambda r, c: book.get(c, args.instruction_id))
    if record is None:
        print(f"no instruction {args.instruction_id}", file=sys.stderr)
        return 1
    print(json.dumps(_outcome_row(record)))
    return 0


def _wait(args: argparse.Namespace, config: RegistryConfig) -> int:
    """Until every instruction is final; prints the count in each state, and exits 1 if some
    failed (or are not final in time)."""
    deadline = time.monotonic() + args.timeout
    said_at = time.monotonic()
    while True:
        found = cli.run_in_books(args, config, lambda r, c: book.counts(c))
        summary = " ".join(f"{state.name.lower()} {n}" for state, n in sorted(found.items()))
        if time.monotonic() - said_at >= PROGRESS_EVERY_SECONDS:
            said_at = time.monotonic()
            progress(f"waiting: {summary}")
        if all(state.final for state in found):
            print(summary or "no instructions")
            failed = found.get(InstructionState.FAILED, 0)
            if failed:
                print(f"{failed} instructions failed: `outcomes` says why, `retry-failed` "
                      "tries them again", file=sys.stderr)  # fmt: skip
            return 1 if failed else 0
        if time.monotonic() > deadline:
            print(f"not final within {args.timeout} s: {summary}", file=sys.stderr)
            return 1
        time.sleep(0.2)


def _retry_failed(args: argparse.Namespace, config: RegistryConfig) -> int:
    """Start failed instructions again (all of them, or those named); exits 1 if some could
    not be (their serials were instructed again meanwhile)."""
    settings = Settings.from_config(config)

    def retry(engine: RegistryEngine, unit: Unit) -> tuple[list[str], list[str]]:
        connection = unit.connection
        intake = Intake(engine, settings)
        retried, refused = [], []
        for instruction_id in args.instruction_id or book.failed(connection):
            record = book.get(connection, instruction_id)
            if record is None or record.state is not InstructionState.FAILED:
                refused.append(f"{instruction_id}: not a failed instruction")
                continue
            try:
                with unit.savepoint():
                    intake.retry(unit, instruction_id)
            except Refusal as refusal:
                refused.append(f"{instruction_id}: not retried: {refusal}")
                continue
            retried.append(instruction_id)
        return retried, refused

    retried, refused = cli.change_books(args, config, retry)
    for line in refused:
        print(line, file=sys.stderr)
    print(f"retried {len(retried)} not_retried {len(refused)}")
    return 1 if refused else 0


# --- leg reconciliation --------------------------------------------------------------------


def forwarded(connection: Connection, ir_registry: str) -> tuple[list[leg.Forward], int]:
    """The first transfers this adapter completed into the IR, from its own books; and how
    many completed instructions went elsewhere."""
    forwards, elsewhere = [], 0
    for record in book.in_state(connection, InstructionState.COMPLETED):
        if record.acquiring_registry != ir_registry:
            elsewhere += 1
            continue
        assert record.transfer_transaction_id is not None
        local = store.get_transaction(connection, record.transfer_transaction_id)
        if local is None or local.status is not Status.COMPLETED:
            forwards.append(leg.Forward(record.transfer_transaction_id, "?", ()))
            continue
        spec = stored_spec(local.body)
        assert spec.type is TransactionType.FIRST_TRANSFER
        assert spec.first_transfer is not None
        party = spec.first_transfer.first_transferring_party
        blocks = tuple(leg.arrival(block, party) for block in spec.blocks)
        forwards.append(leg.Forward(spec.transaction_id, spec.acquiring_account, blocks))
    return forwards, elsewhere


def _ir_intake(config: RegistryConfig) -> ir_pb2.ListIntakeResponse:
    table = config.document.get("mechanism", {})
    ir_registry = table.get("ir_registry_id", "UNIR")
    tls = TlsMaterial.from_paths(config.ca_certificate, config.tls_certificate, config.tls_key)
    with grpc.secure_channel(
        table["ir_admin_endpoint"], channel_credentials(tls), options=channel_options(ir_registry)
    ) as channel:
        stub = ir_grpc.InternationalRegistryAdminServiceStub(channel)
        reply: ir_pb2.ListIntakeResponse = stub.ListIntake(
            ir_pb2.ListIntakeRequest(transferring_registry=config.registry_id), timeout=60
        )
        return reply


def _reconcile(args: argparse.Namespace, config: RegistryConfig) -> int:
    ir_registry = config.document.get("mechanism", {}).get("ir_registry_id", "UNIR")
    forwards, elsewhere = cli.run_in_books(args, config, lambda r, c: forwarded(c, ir_registry))
    try:
        reply = _ir_intake(config)
    except grpc.RpcError as error:
        print(f"the international registry did not answer: {error.code().name}", file=sys.stderr)
        return 3
    taken_in = [
        leg.Forward(t.transaction_id, t.acquiring_account, tuple(unit_block(b) for b in t.blocks))
        for t in reply.transactions
    ]
    held = [(h.account_id, unit_block(h.block)) for h in reply.held]
    report = leg.reconcile(forwards, taken_in, held, elsewhere)
    rows = [{"kind": d.kind, "reference": d.reference, "detail": d.detail}
            for d in report.discrepancies]  # fmt: skip
    summary = {
        "clean": report.clean, "forwarded_units": report.forwarded_units,
        "taken_in_units": report.taken_in_units, "transactions": report.compared_transactions,
        "to_party_registries": report.elsewhere, "discrepancies": rows,
    }  # fmt: skip
    if args.json:
        print(json.dumps(summary))
    else:
        state = "clean" if report.clean else f"{len(rows)} discrepancies"
        print(
            f"mechanism leg: {state}; {report.compared_transactions} first transfers, "
            f"{report.forwarded_units:,} units forwarded, {report.taken_in_units:,} taken in "
            f"by {ir_registry}; {report.elsewhere} to Party registries (not compared here)"
        )
        for row in rows:
            print(f"  {row['kind']:<14} {row['reference']:<16} {row['detail']}")
    return 0 if report.clean else 1


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    bulk = command("import", _import, "take a bulk file of instructions")
    bulk.add_argument("file", type=Path)
    bulk.add_argument("--format", choices=["jsonl", "csv"], help="default: from the suffix")
    bulk.add_argument("--chunk", type=int, default=200, help="instructions per SQL transaction")
    outcomes = command("outcomes", _outcomes, "instructions' outcomes, in feed order")
    outcomes.add_argument("--after", type=int, default=0, help="feed sequence to start after")
    outcomes.add_argument("--limit", type=int, default=100_000)
    outcomes.add_argument("--json", action="store_true")
    command("instruction", _instruction, "one instruction's outcome").add_argument("instruction_id")
    wait = command("wait-instructions", _wait, "wait until every instruction is final")
    wait.add_argument("--timeout", type=float, default=120.0)
    retry = command("retry-failed", _retry_failed, "start failed instructions again")
    retry.add_argument("instruction_id", nargs="*", help="default: every failed instruction")
    reconcile = command("reconcile-leg", _reconcile, "reconcile forwarded AERs with IR intake")
    reconcile.add_argument("--json", action="store_true")


MECHANISM_KEYS = frozenset({
    "intake_listen", "intake_identities", "pending_account", "cooperative_approach",
    "deduction_rounding", "default_acquiring_registry", "ir_admin_endpoint", "ir_registry_id",
})  # fmt: skip


def check_config(config: RegistryConfig) -> None:
    """The [mechanism] table, as the adapter will read it."""
    check_table(config, "mechanism", MECHANISM_KEYS)
    try:
        Settings.from_config(config)
    except ValueError as error:
        raise ConfigError(f"{config.path}: [mechanism] {error}") from None


KIND = cli.RegistryKind(
    prog="article6-mechanism",
    rules=lambda config: MechanismRules(Settings.from_config(config)),
    tables=(book.metadata,),
    add_commands=add_commands,
    serve=serve,
    description="Run and operate the Article 6.4 mechanism registry's adapter to the hub.",
    own_tables=frozenset({"mechanism"}),
    check=check_config,
)


def main(argv: list[str] | None = None) -> int:
    return cli.main(KIND, argv)


if __name__ == "__main__":
    sys.exit(main())
