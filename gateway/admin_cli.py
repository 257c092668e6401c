"""``article6-admin``: the operators' command line over the hub's admin service.

    article6-admin --endpoint 127.0.0.1:7001 --pki net/pki COMMAND ...

    transactions [--status completed] [--type external_transfer] [--registry GHA01] [--limit N]
    transaction GHA01-2                 one transaction with its status history
    registries                          the directory, with each registry's standing
    suspend CHE01 --reason "..."        refuse its messages until resumed
    resume CHE01 --reason "..."
    outbox [--dead] [--registry CHE01]  messages awaiting delivery, or dead letters
    retry ENTRY_ID                      put a dead letter back into delivery
    retry --all [--registry CHE01]      put every dead letter (to CHE01) back into delivery
    holdings [--registry GHA01]         the hub's ledger
    reconcile GHA01                     run a reconciliation with a registry now
    reconciliations [--registry GHA01]  runs, newest first
    reconciliation RUN-...              one run and the discrepancies it found
    discrepancies [--registry R] [--open]   discrepancies (open ones freeze their serials)
    resolve 7 --reason "..."            resolve a discrepancy, unfreezing its serials
    authorizations [--party GHA] [--ca CA0001]   authorizations at their current version
    authorization GHA-2026-001          one authorization with every version it went through
    audit [--subject GHA01-7] [--limit N]   the newest audit entries
    audit-verify                        the hub verifies its audit trail (offline: article6-hub)
    aef-export --party CHE [--year 2026] [--out CHE-2026-AEF.xlsx]   a Party's AEF prefill
    aef-export --party CHE --format csv|json [--table actions]      one table of it
    aef-check CHE-2026.xlsx --party CHE [--year 2026] [--out checked.xlsx]
                                        a submitted AEF checked against the hub's ledger
                                        (exit 1 when inconsistent)

Every command takes ``--json``. The client authenticates with the operator identity's
certificate (``--identity``, default OPERATOR) from the PKI folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from article6.aef.template import template
from article6.aef.workbook import FORMATS
from article6.codes import Code
from article6.config_check import ConfigError, read_toml
from article6.help import finish
from article6.limits import ADMIN_MAX_MESSAGE_BYTES
from article6.model import Purpose, Status, TransactionType
from article6.pki import RegistryFiles
from article6.process import command_line, progress
from article6.service import grpc_message_options
from article6.tls import TlsMaterial, channel_credentials, channel_options
from article6.v1 import admin_pb2, admin_pb2_grpc, units_pb2
from article6.version import add_version
from article6.wire import run_status_words
from gateway.audit import Entry, Head, Verdict, entry_line, verdict_lines

Stub = admin_pb2_grpc.AdminServiceStub
STATUSES = {status.name.lower(): status.value for status in Status}
TYPES = {kind.name.lower(): kind.value for kind in TransactionType}


def _codes(results: Any) -> str:
    return ", ".join(
        f"{r.code} {Code(r.code).name}" if r.code in _KNOWN else str(r.code) for r in results
    )


def _summary_line(summary: admin_pb2.TransactionSummary) -> str:
    tx = summary.transaction
    kind = TransactionType(tx.type).name.lower() if tx.type in TYPES.values() else str(tx.type)
    status = Status(summary.status)
    return (
        f"{tx.transaction_id:<14} {kind:<22} {tx.quantity:>14,}  "
        f"{tx.transferring_registry:<6} -> {tx.acquiring_registry:<6} "
        f"{status.value} {status.name.lower():<11} {_codes(summary.results)}"
    ).rstrip()


def _transactions(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    request = admin_pb2.ListTransactionsRequest(
        status=STATUSES.get(args.status or "", 0),  # type: ignore[arg-type]
        type=TYPES.get(args.type or "", 0),  # type: ignore[arg-type]
        registry=args.registry or "",
        limit=args.limit,
    )
    reply = stub.ListTransactions(request, timeout=10)
    return reply if args.json else [_summary_line(s) for s in reply.transactions]


def _transaction(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    reply = stub.GetTransaction(
        admin_pb2.GetTransactionRequest(transaction_id=args.transaction_id), timeout=10
    )
    if args.json:
        return reply
    lines = [_summary_line(reply.summary)]
    for change in reply.history:
        at = change.at.ToDatetime().isoformat(timespec="milliseconds")
        status = Status(change.status)
        lines.append(f"  {at}  {status.value} {status.name.lower():<11} {_codes(change.results)}")
    return lines


def _registries(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    reply = stub.ListRegistries(admin_pb2.ListRegistriesRequest(), timeout=10)
    lines = []
    for r in reply.registries:
        standing = "SUSPENDED" if r.suspended else "active"
        keys = ", ".join(key_id[:12] for key_id in r.key_ids)
        lines.append(
            f"{r.registry_id:<10} {r.kind:<14} {r.endpoint:<22} {standing:<10} keys {keys}"
        )
    return reply if args.json else lines


def _set_status(suspended: bool) -> Callable[[Stub, argparse.Namespace], Message | list[str]]:
    def run(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
        request = admin_pb2.SetRegistryStatusRequest(
            registry_id=args.registry_id, suspended=suspended, reason=args.reason
        )
        reply = stub.SetRegistryStatus(request, timeout=10)
        state = "suspended" if reply.registry.suspended else "active"
        return reply if args.json else [f"{reply.registry.registry_id} is now {state}"]

    return run


DEFINITIONS = {0: "NA", 1: "NA", 2: "authorization", 3: "issuance", 4: "use or cancellation"}


def _version_line(version: admin_pb2.AuthorizationVersion) -> str:
    granted = version.authorization
    cap = f"{granted.quantity_cap:,}" if granted.quantity_cap else "no cap"
    uses = f"{granted.use_year_first or '..'}-{granted.use_year_last or '..'}"
    revoked = " REVOKED" if granted.revoked else ""
    return (
        f"{granted.authorization_id:<20} v{granted.version:<3} {granted.authorizing_party} "
        f"{granted.cooperative_approach} {Purpose(granted.purpose).name.lower():<13} {cap:>14} "
        f"vintages {granted.vintage_first}-{granted.vintage_last} use {uses} first transfer "
        f"for OIMP: {DEFINITIONS.get(granted.first_transfer_definition, '?')} "
        f"({version.transaction_id} by {version.registry}){revoked}"
    )


def _authorizations(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    request = admin_pb2.ListAuthorizationsRequest(
        party=args.party or "", cooperative_approach=args.ca or ""
    )
    reply = stub.ListAuthorizations(request, timeout=10)
    return reply if args.json else [
        f"{_version_line(a.current)}; first transferred {a.first_transferred:,}"
        for a in reply.authorizations
    ]  # fmt: skip


def _authorization(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    request = admin_pb2.GetAuthorizationRequest(authorization_id=args.authorization_id)
    reply = stub.GetAuthorization(request, timeout=10)
    if args.json:
        return reply
    lines = [_version_line(version) for version in reply.versions]
    return [*lines, f"first transferred {reply.summary.first_transferred:,}"]


def _outbox_line(entry: admin_pb2.OutboxEntry) -> str:
    kind = entry.payload_type.rsplit(".", 1)[-1]
    return (
        f"{entry.entry_id:>8} -> {entry.recipient:<8} {kind:<20} {entry.transaction_id:<14} "
        f"attempts {entry.attempts:<3} {entry.last_error[:80]}"
    ).rstrip()


def _outbox(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    request = admin_pb2.ListOutboxRequest(
        dead_letters=args.dead, registry=args.registry or "", limit=args.limit
    )
    reply = stub.ListOutbox(request, timeout=10)
    return reply if args.json else [_outbox_line(entry) for entry in reply.entries]


def _retry(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    if args.entry_id is None:
        if not args.all:
            raise SystemExit("retry: give an ENTRY_ID, or --all (with --registry to narrow it)")
        request = admin_pb2.RetryDeadLettersRequest(registry=args.registry or "")
        many = stub.RetryDeadLetters(request, timeout=30)
        return many if args.json else [f"back in delivery: {many.count} dead letters"]
    reply = stub.RetryDeadLetter(admin_pb2.RetryDeadLetterRequest(entry_id=args.entry_id))
    return reply if args.json else [f"back in delivery: {_outbox_line(reply.entry)}"]


def _state(value: int) -> str:
    """A unit state by name (held, used, cancelled), as the wire's enum names it."""
    return units_pb2.UnitState.Name(value).removeprefix("UNIT_STATE_").lower()  # type: ignore[arg-type]


def _kind(value: int) -> str:
    return units_pb2.UnitKind.Name(value).removeprefix("UNIT_KIND_").lower().replace("_", " ")  # type: ignore[arg-type]


def _holdings(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    reply = stub.ListHoldings(admin_pb2.ListHoldingsRequest(registry=args.registry or ""))
    return reply if args.json else [
        f"{h.registry:<8} {h.account_id:<16} {h.block.originating_registry}:"
        f"{h.block.serial_first}-{h.block.serial_last}  "
        f"{h.block.serial_last - h.block.serial_first + 1:>14,}  {h.block.cooperative_approach} "
        f"{h.block.vintage} {_state(h.block.state)}"
        for h in reply.blocks
    ]  # fmt: skip


def _run_line(run: admin_pb2.ReconciliationRun) -> str:
    status = run_status_words(run.status)
    state = "open" if run.open else status
    return (
        f"{run.run_id:<22} {run.registry:<8} {state:<30} "
        f"{run.hub_blocks:>9,} / {run.registry_blocks:<9,} blocks  {_held(run):>12}  "
        f"{run.round_trips:>3} round trips {run.bytes_exchanged:>10,} bytes  {run.detail}"
    ).rstrip()


def _held(run: admin_pb2.ReconciliationRun) -> str:
    """How long the run held the registry's proposals (7002)."""
    if not run.HasField("released_at"):
        return "holding" if run.holding else ""
    held = run.released_at.ToDatetime() - run.started_at.ToDatetime()
    return f"held {held.total_seconds() * 1000:,.0f} ms"


def _discrepancy_line(item: admin_pb2.Discrepancy) -> str:
    block = item.block.block
    where = item.run_id or f"leg {item.transaction_id}"
    state = "open" if item.open else f"resolved by {item.resolved_by}: {item.reason}"
    return (
        f"{item.discrepancy_id:>6} {item.registry:<8} {item.side:<8} {item.block.account_id:<16} "
        f"{block.originating_registry}:{block.serial_first}-{block.serial_last} "
        f"{block.cooperative_approach} {block.vintage} {_kind(block.unit_kind)} "
        f"{_state(block.state)} "
        f"({where}) {state}"
    )


INCONSISTENT = frozenset({3, 4, 7})  # totals or blocks inconsistent, start denied


PROGRESS_SECONDS = 5.0  # a long run says where it is this often, on stderr


def _reconcile(stub: Stub, args: argparse.Namespace) -> tuple[Message | list[str], int]:
    """Exit 1 when the run did not find the ledgers in agreement, as reconcile-leg does.
    While it runs, say where it is every PROGRESS_SECONDS on stderr (stdout keeps the result)."""
    request = admin_pb2.RunReconciliationRequest(registry=args.registry)
    waiting = partial(_run_progress, stub, args.registry)
    reply = _awaited(stub.RunReconciliation, request, args.timeout, waiting)
    status = 1 if reply.run.status in INCONSISTENT else 0
    return (reply if args.json else [_run_line(reply.run)]), status


def _awaited(
    method: Any, request: Message, timeout: float | None, waiting: Callable[[float], None]
) -> Any:
    """Call a unary RPC and wait for its reply, telling ``waiting`` the seconds spent every
    PROGRESS_SECONDS until it comes (a failed call raises its error, as a plain call does)."""
    call, started = method.future(request, timeout=timeout), time.monotonic()
    while True:
        try:
            return call.result(timeout=PROGRESS_SECONDS)
        except grpc.FutureTimeoutError:
            waiting(time.monotonic() - started)


def _waiting_for(what: str) -> Callable[[float], None]:
    def say(elapsed: float) -> None:
        progress(f"waiting for {what}, {elapsed:.0f} s")

    return say


def _run_progress(stub: Stub, registry: str, elapsed: float) -> None:
    """One line on where the registry's open run is (from the hub's record of it)."""
    try:
        request = admin_pb2.ListReconciliationRunsRequest(registry=registry)
        listed = stub.ListReconciliationRuns(request, timeout=PROGRESS_SECONDS)
    except grpc.RpcError:
        listed = admin_pb2.ListReconciliationRunsResponse()
    running = [run for run in listed.runs if run.open]
    where = f"{running[0].run_id}: {running[0].detail}" if running else "starting"
    progress(f"reconciling {registry}, {elapsed:.0f} s: {where}")


def _reconciliations(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    request = admin_pb2.ListReconciliationRunsRequest(registry=args.registry or "")
    reply = stub.ListReconciliationRuns(request, timeout=10)
    return reply if args.json else [_run_line(run) for run in reply.runs]


def _reconciliation(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    request = admin_pb2.GetReconciliationRunRequest(run_id=args.run_id)
    reply = stub.GetReconciliationRun(request, timeout=10)
    if args.json:
        return reply
    if not reply.found:
        return [f"no run {args.run_id}"]
    return [_run_line(reply.run), *(_discrepancy_line(d) for d in reply.discrepancies)]


def _discrepancies(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    request = admin_pb2.ListDiscrepanciesRequest(registry=args.registry or "", open_only=args.open)
    reply = stub.ListDiscrepancies(request, timeout=10)
    return reply if args.json else [_discrepancy_line(d) for d in reply.discrepancies]


def _resolve(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    request = admin_pb2.ResolveDiscrepancyRequest(
        discrepancy_id=args.discrepancy_id, reason=args.reason
    )
    reply = stub.ResolveDiscrepancy(request, timeout=10)
    return reply if args.json else [_discrepancy_line(reply.discrepancy)]


def _audit(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    request = admin_pb2.ListAuditEntriesRequest(subject=args.subject or "", limit=args.limit)
    reply = stub.ListAuditEntries(request, timeout=30)
    return reply if args.json else [
        entry_line(Entry(e.seq, e.at, e.actor, e.action, e.subject, {}), e.detail_json)
        for e in reversed(reply.entries)
    ]  # fmt: skip


def _audit_verify(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    reply = stub.VerifyAuditTrail(admin_pb2.VerifyAuditTrailRequest(), timeout=600)
    if args.json:
        return reply
    head = Head(reply.head_seq, reply.head_hash, reply.head_key_id, b"")
    return verdict_lines(Verdict(reply.entries, list(reply.problems)), head)


class Failed(Exception):
    """A command that cannot go on: what to say, and the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _aef_export(stub: Stub, args: argparse.Namespace) -> Message | list[str]:
    request = admin_pb2.ExportPartyAefRequest(
        party=args.party, year=args.year, format=args.format, table=args.table,
    )  # fmt: skip
    waiting = _waiting_for(f"the hub's AEF export for {args.party} {args.year}")
    reply = _awaited(stub.ExportPartyAef, request, None, waiting)
    if args.format != "xlsx":
        return [reply.content.rstrip("\n")]
    out = Path(args.out or f"{args.party}-{args.year}-AEF.xlsx")
    out.write_bytes(reply.workbook)
    return [f"{out}: the AEF of {args.party} from the hub's ledger"]


def _aef_check(stub: Stub, args: argparse.Namespace) -> tuple[Message | list[str], int]:
    path = Path(args.file)
    try:
        submitted = path.read_bytes()
    except OSError as error:
        raise Failed(f"cannot read {path}: {error.strerror}", 2) from None
    try:
        request = admin_pb2.CheckPartyAefRequest(
            party=args.party, year=args.year, workbook=submitted,
        )  # fmt: skip
        waiting = _waiting_for(f"the hub's check of {path} against its ledger")
        reply = _awaited(stub.CheckPartyAef, request, None, waiting)
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.INVALID_ARGUMENT:
            raise
        raise Failed(f"{path}: {error.details()}", 2) from None
    out = Path(args.out or path.with_name(f"{path.stem}-checked.xlsx"))
    out.write_bytes(reply.workbook)
    status = 0 if reply.consistent else 1
    if args.json:
        reply.ClearField("workbook")
        return reply, status
    lines = [f"{i.sheet}!row {i.row}: {i.detail} [{i.kind}]" if i.row else
             f"{i.sheet}: {i.detail} [{i.kind}]" for i in reply.inconsistencies]  # fmt: skip
    many = "inconsistency" if len(lines) == 1 else "inconsistencies"
    verdict = "consistent" if reply.consistent else f"{len(lines)} {many}"
    return [*lines, f"{path}: {verdict} with the hub's ledger; results written to {out}"], status


ENVIRONMENT = {"endpoint": "ARTICLE6_ADMIN_ENDPOINT", "pki": "ARTICLE6_PKI",
               "identity": "ARTICLE6_IDENTITY", "hub_id": "ARTICLE6_HUB_ID"}  # fmt: skip


def _context(environment: Mapping[str, str]) -> dict[str, str]:
    """Connection settings from a named context (ARTICLE6_CONTEXT, a table of
    ``$XDG_CONFIG_HOME/article6/contexts.toml``), overridden by the environment's own
    variables, themselves overridden by flags: as ``nats context`` and PGHOST do."""
    settings: dict[str, str] = {}
    name = environment.get("ARTICLE6_CONTEXT", "")
    if name:
        home = Path(environment.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        path = home / "article6" / "contexts.toml"
        contexts = read_toml(path)
        if name not in contexts:
            raise ConfigError(f"{path}: no context {name!r} (ARTICLE6_CONTEXT)")
        settings |= {key: str(value) for key, value in contexts[name].items()
                     if key in ENVIRONMENT}  # fmt: skip
    return settings | {key: environment[var] for key, var in ENVIRONMENT.items()
                       if environment.get(var)}  # fmt: skip


def _connection_arguments(parser: argparse.ArgumentParser, context: dict[str, str]) -> None:
    parser.add_argument(
        "--endpoint",
        default=context.get("endpoint"),
        required="endpoint" not in context,
        help="the hub's admin_listen address (or ARTICLE6_ADMIN_ENDPOINT)",
    )
    parser.add_argument(
        "--pki",
        type=Path,
        default=context.get("pki"),
        required="pki" not in context,
        help="folder written by pki init (or ARTICLE6_PKI)",
    )
    parser.add_argument(
        "--identity",
        default=context.get("identity", "OPERATOR"),
        help="client identity in the PKI (or ARTICLE6_IDENTITY; OPERATOR)",
    )
    parser.add_argument("--hub-id", default=context.get("hub_id", "HUB"),
                        help="the hub's TLS identity (or ARTICLE6_HUB_ID; HUB)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="article6-admin",
        description="The operators' command line over the hub's admin service.",
    )
    add_version(parser)
    _connection_arguments(parser, _context(os.environ))
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: object, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--json", action="store_true", help="print the reply as JSON")
        sub.set_defaults(handler=handler)
        return sub

    listing = command("transactions", _transactions, "list transactions, newest first")
    listing.add_argument("--status", choices=sorted(STATUSES))
    listing.add_argument("--type", choices=sorted(TYPES))
    listing.add_argument("--registry")
    listing.add_argument("--limit", type=int, default=50)
    command("transaction", _transaction, "one transaction and its history").add_argument(
        "transaction_id"
    )
    command("registries", _registries, "the registry directory")
    for name, suspended in (("suspend", True), ("resume", False)):
        sub = command(name, _set_status(suspended), f"{name} a registry")
        sub.add_argument("registry_id")
        sub.add_argument("--reason", required=True, help="recorded with the change")
    outbox = command("outbox", _outbox, "messages awaiting delivery, or dead letters")
    outbox.add_argument("--dead", action="store_true", help="dead letters only")
    outbox.add_argument("--registry")
    outbox.add_argument("--limit", type=int, default=100)
    retry = command("retry", _retry, "put dead letters back into delivery")
    retry.add_argument("entry_id", type=int, nargs="?", help="one dead letter's outbox id")
    retry.add_argument("--all", action="store_true", help="every dead letter")
    retry.add_argument("--registry", help="with --all: only those to this registry")
    command("holdings", _holdings, "the hub's ledger").add_argument("--registry")
    reconcile = command("reconcile", _reconcile, "run a reconciliation with a registry now")
    reconcile.add_argument("registry")
    reconcile.add_argument("--timeout", type=float, default=600.0)
    command("reconciliations", _reconciliations, "reconciliation runs").add_argument("--registry")
    command("reconciliation", _reconciliation, "one run and its discrepancies").add_argument(
        "run_id"
    )
    listing = command("discrepancies", _discrepancies, "discrepancies found")
    listing.add_argument("--registry")
    listing.add_argument("--open", action="store_true", help="open ones only")
    resolve = command("resolve", _resolve, "resolve a discrepancy, unfreezing its serials")
    resolve.add_argument("discrepancy_id", type=int)
    resolve.add_argument("--reason", required=True, help="recorded with the resolution")
    listing = command("authorizations", _authorizations, "authorizations, current versions")
    listing.add_argument("--party", help="authorizing Party (ISO 3166-1 alpha-3)")
    listing.add_argument("--ca", help="cooperative approach")
    command("authorization", _authorization, "one authorization, every version").add_argument(
        "authorization_id"
    )
    trail = command("audit", _audit, "the newest entries of the hub's audit trail")
    trail.add_argument("--subject", help="a transaction, run, registry or discrepancy id")
    trail.add_argument("--limit", type=int, default=50)
    command("audit-verify", _audit_verify, "the hub checks its audit trail's chain and head")
    _aef_commands(command)
    return parser


def _aef_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    this_year = datetime.now(UTC).year
    export = command("aef-export", _aef_export, "a Party's AEF prefill from the hub's ledger")
    export.add_argument("--party", required=True, help="a Party with a registry of its own")
    export.add_argument("--year", type=int, default=this_year, help="the reported year")
    export.add_argument("--format", choices=list(FORMATS), default="xlsx")
    export.add_argument("--out", help="the workbook to write (default PARTY-YEAR-AEF.xlsx)")
    export.add_argument("--table", choices=[t.key for t in template().tables], default="actions",
                        help="with csv or json: the table to print")  # fmt: skip
    check = command("aef-check", _aef_check, "check a Party's AEF against the hub's ledger")
    check.add_argument("file", help="the submitted workbook (.xlsx)")
    check.add_argument("--party", required=True, help="the submitting Party")
    check.add_argument("--year", type=int, default=this_year, help="the reported year")
    check.add_argument("--out", help="the workbook with results (default FILE-checked.xlsx)")


@command_line
def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except ConfigError as error:
        print(f"article6-admin: {error}", file=sys.stderr)
        return 2
    args = finish(parser).parse_args(argv)
    tls = TlsMaterial.load(RegistryFiles(args.pki, args.identity))
    credentials = channel_credentials(tls)
    options = [*channel_options(args.hub_id), *grpc_message_options(ADMIN_MAX_MESSAGE_BYTES)]
    with grpc.secure_channel(args.endpoint, credentials, options=options) as channel:
        try:
            result = args.handler(admin_pb2_grpc.AdminServiceStub(channel), args)
        except grpc.RpcError as error:
            print(f"article6-admin: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
        except Failed as failed:
            print(f"article6-admin: {failed}", file=sys.stderr)
            return failed.status
    # A handler returns what to print, and with it the exit status when that is not 0.
    shown, status = result if isinstance(result, tuple) else (result, 0)
    if isinstance(shown, Message):
        print(json.dumps(MessageToDict(shown, preserving_proto_field_name=True), indent=2))
    else:
        print("\n".join(shown) if shown else "(none)")
    return int(status)


_KNOWN = frozenset(code.value for code in Code)

if __name__ == "__main__":
    sys.exit(main())
