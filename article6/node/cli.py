"""The operator command line every registry here shares (``article6-registry`` is the
reference one); a registry adds its own commands through ``RegistryKind``.

    serve --config C                    serve the hub, send the outbox, recover
    issue --config C --account A --vintage Y --serials F-L        (mitigation outcomes)
    issue ... --kind itmo --ca CA --authorization ID              (first transfer by issuance)
    authorize --config C --authorization-id ID --ca CA --vintages Y-Y [--purpose P]
        [--definition D] [--version N] [--revoke] [--from A --serials F-L]
    first-transfer --config C --from A --serials F-L --to-registry R --to A
    transfer --config C --from A --to-registry R --to A --serials F-L
    use --config C --from A --serials F-L [--party P] [--year Y] [--to A] [--first-transfer]
    cancel --config C --from A --serials F-L [--voluntary --purpose P] [--to A]
    holdings | transactions --config C [--json]
    wait --config C TRANSACTION_ID [--timeout S]   (exit 0 completed, 1 any other outcome)
    remove-space --config C --space KIT01 --reason R   (a test's units out of the books)

Operator commands write to the registry's own database; the serving process sends what they
queue to the hub. ``wait`` follows a transaction until its final status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from article6.blocks import Block, serial_range
from article6.codes import Code, Refusal
from article6.config_check import ConfigError
from article6.help import finish
from article6.identifiers import SERIAL_MAX
from article6.logs import configure_logging
from article6.model import (
    AccountType,
    FirstTransferTrigger,
    Purpose,
    Status,
    TransactionType,
    UnitAttributes,
    UnitKind,
    UnitState,
)
from article6.node import store
from article6.node.config import RegistryConfig, load_config
from article6.node.engine import Proposal, RegistryEngine, Rules
from article6.node.server import build_engine, serve
from article6.process import command_line
from article6.unit import Unit
from article6.v1 import transaction_pb2, units_pb2
from article6.version import add_version

ACCOUNT_TYPES = {
    name.lower().replace("_", "-"): kind for name, kind in AccountType.__members__.items()
}
PURPOSES = {
    name.lower().replace("_", "-"): purpose
    for name, purpose in Purpose.__members__.items()
    if purpose is not Purpose.UNSPECIFIED
}
TRIGGERS = {
    name.lower().replace("_", "-"): trigger.value
    for name, trigger in FirstTransferTrigger.__members__.items()
    if trigger is not FirstTransferTrigger.UNSPECIFIED
}
# An authorization's first-transfer definition for OIMP (AEF Table 2: "NA" without OIMP).
DEFINITIONS = {
    "na": FirstTransferTrigger.UNSPECIFIED,
    "authorization": FirstTransferTrigger.AUTHORIZATION,
    "issuance": FirstTransferTrigger.ISSUANCE,
    "use-or-cancellation": FirstTransferTrigger.USE_OR_CANCELLATION,
}


def serials(text: str) -> Block[str] | Block[None]:
    """``1-100``, or ``GHA01:1-100`` naming the serials' originating registry."""
    space, _, numbers = text.rpartition(":")
    first_text, _, last_text = numbers.partition("-")
    if not first_text.isdigit() or not (last_text or first_text).isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: serials are FIRST-LAST, e.g. 1-100")
    first, last = int(first_text), int(last_text or first_text)
    if not 1 <= first <= last <= SERIAL_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the first serial must be at least 1 and at most the last"
        )
    if space:
        return Block(first, last, space)
    return serial_range(first, last)


@dataclass(frozen=True)
class RegistryKind:
    """What a registry brings to the shared command line: its rules, its own tables, and
    commands of its own (``add_commands`` receives the ``command`` helper of build_parser)."""

    prog: str
    rules: Callable[[RegistryConfig], Rules]
    tables: Sequence[store.Schema]
    add_commands: Callable[[Callable[..., argparse.ArgumentParser]], None]
    # How to serve, when a registry serves more than the shared node (an admin port...).
    serve: Callable[[RegistryConfig], Coroutine[Any, Any, None]] | None = None
    description: str = "Run and operate a Party registry."
    own_tables: frozenset[str] = frozenset()  # the config's tables of this kind's own
    # What else a config must satisfy (its own tables' keys and values): raises ConfigError.
    check: Callable[[RegistryConfig], None] | None = None


def run_in_books(
    args: argparse.Namespace,
    config: RegistryConfig,
    work: Callable[[RegistryEngine, Connection], Any],
) -> Any:
    """Run ``work`` in one transaction on the registry's database, with its engine (the
    registry's kind travels in ``args``, put there by ``main``)."""
    return change_books(args, config, lambda registry, unit: work(registry, unit.connection))


def change_books(
    args: argparse.Namespace,
    config: RegistryConfig,
    work: Callable[[RegistryEngine, Unit], Any],
) -> Any:
    """Apply ``work`` in one unit of work on the registry's database, with its engine, then
    what it noted for after the commit (its log lines). What it queues for the hub waits for
    the serving process's pump to claim it: no pump runs here, so nothing is handed to one."""
    kind: RegistryKind = args.registry_kind
    registry = build_engine(config, kind.rules(config))
    engine = store.open_database(config.database, *kind.tables)
    try:
        with engine.begin() as connection:
            unit = Unit(connection)
            done = work(registry, unit)
        for action in unit.take_actions():
            action()
        return done
    finally:
        engine.dispose()


def _propose(args: argparse.Namespace, config: RegistryConfig, proposal: Proposal) -> int:
    print(change_books(args, config, lambda r, u: r.propose(u, proposal)))
    return 0


def _issue(args: argparse.Namespace, config: RegistryConfig) -> int:
    """Mitigation outcomes are issued unauthorized and authorized later. ITMOs are issued
    only as their first transfer, under an authorization that defines issuance so (for OIMP).
    The units originate in the serial space the registry's rules give the account."""
    print(
        change_books(
            args, config, lambda r, u: r.propose(u, _issuance(args, config, r, u.connection))
        )
    )
    return 0


def _issuance(
    args: argparse.Namespace,
    config: RegistryConfig,
    registry: RegistryEngine,
    connection: Connection,
) -> Proposal:
    outcomes = args.kind == "mitigation-outcome"
    party = args.first_transferring_party or config.party
    unit = UnitAttributes(
        originating_registry=registry.rules.serial_space(connection, args.account),
        vintage=args.vintage,
        cooperative_approach="" if outcomes else args.ca or "",
        first_transferring_party="" if outcomes else party,
        authorization_id="" if outcomes else args.authorization or "",
        purpose=Purpose.UNSPECIFIED if outcomes else PURPOSES[args.purpose],
        unit_kind=UnitKind.MITIGATION_OUTCOME if outcomes else UnitKind.ITMO,
        state=UnitState.HELD,
    )
    issued = [r.with_attributes(unit) for r in args.serials]
    first = None if outcomes else _first(party, FirstTransferTrigger.ISSUANCE)
    return Proposal(
        TransactionType.ISSUANCE, "", config.registry_id, args.account, issued=issued,
        first_transfer=first,
    )  # fmt: skip


def _first(party: str, trigger: FirstTransferTrigger) -> transaction_pb2.FirstTransfer:
    return transaction_pb2.FirstTransfer(
        first_transferring_party=party,
        trigger=transaction_pb2.FirstTransferTrigger.ValueType(trigger.value),
    )


def _entity(text: str) -> transaction_pb2.AuthorizedEntity:
    """``NAME;COUNTRY;IDENTIFICATION[;CONDITIONS]``, as the AEF's Table 5 lists an entity."""
    parts = text.split(";")
    name, country, number, *rest = parts + [""] * (3 - len(parts))
    return transaction_pb2.AuthorizedEntity(
        name=name.strip(), country=country.strip(), identification_number=number.strip(),
        conditions=";".join(rest).strip(),
    )  # fmt: skip


def _authorize(args: argparse.Namespace, config: RegistryConfig) -> int:
    """An authorization (version 1) or a new version of one, every term restated as the AEF's
    Table 2 row for that version; with ``--from``/``--serials`` it also binds outcomes."""
    if bool(args.source) != bool(args.serials):
        raise Refusal(Code.REQUIRED_FIELD_MISSING, "--from and --serials go together")
    first, _, last = args.vintages.partition("-")
    use_first, _, use_last = (args.use_years or "").partition("-")
    grant = transaction_pb2.Authorization(
        authorization_id=args.authorization_id,
        authorizing_party=args.party or config.party,
        cooperative_approach=args.ca,
        purpose=units_pb2.Purpose.ValueType(PURPOSES[args.purpose].value),
        quantity_cap=args.cap,
        vintage_first=int(first),
        vintage_last=int(last or first),
        first_transfer_definition=transaction_pb2.FirstTransferTrigger.ValueType(
            DEFINITIONS[args.definition].value
        ),
        version=args.version,
        use_year_first=int(use_first or 0),
        use_year_last=int(use_last or use_first or 0),
        authorized_parties=args.authorized_party or [],
        authorized_entities=[_entity(text) for text in args.entity or []],
        revoked=args.revoke,
    )
    grant.authorized_at.FromDatetime(datetime.now(UTC))
    proposal = Proposal(
        TransactionType.AUTHORIZATION, args.source or "", config.registry_id, "",
        args.serials or (), authorization=grant,
    )  # fmt: skip
    return _propose(args, config, proposal)


def _first_transfer(args: argparse.Namespace, config: RegistryConfig) -> int:
    first = transaction_pb2.FirstTransfer(
        first_transferring_party=args.party or config.party,
        trigger=transaction_pb2.FirstTransferTrigger.ValueType(TRIGGERS[args.trigger]),
    )
    proposal = Proposal(
        TransactionType.FIRST_TRANSFER, args.source, args.to_registry, args.to, args.serials,
        first_transfer=first,
    )  # fmt: skip
    return _propose(args, config, proposal)


def _transfer(args: argparse.Namespace, config: RegistryConfig) -> int:
    external = args.to_registry != config.registry_id
    kind = TransactionType.EXTERNAL_TRANSFER if external else TransactionType.INTERNAL_TRANSFER
    proposal = Proposal(kind, args.source, args.to_registry, args.to, ranges=args.serials)
    return _propose(args, config, proposal)


def _use_details(args: argparse.Namespace, config: RegistryConfig) -> transaction_pb2.UseDetails:
    return transaction_pb2.UseDetails(
        using_party=args.party or config.party,
        year_of_use=getattr(args, "year", None) or 0,
        purpose=units_pb2.Purpose.ValueType(PURPOSES[args.purpose].value),
        entity=args.entity or "",
    )


def _by_use(
    args: argparse.Namespace, config: RegistryConfig
) -> transaction_pb2.FirstTransfer | None:
    """``--first-transfer``: the use or cancellation is the outcomes' first transfer, as their
    authorization defines it; they are used or cancelled as ITMOs."""
    if not args.first_transfer:
        return None
    return _first(args.party or config.party, FirstTransferTrigger.USE_OR_CANCELLATION)


def _use(args: argparse.Namespace, config: RegistryConfig) -> int:
    proposal = Proposal(
        TransactionType.USE, args.source, config.registry_id, args.to or "", args.serials,
        use=_use_details(args, config), first_transfer=_by_use(args, config),
    )  # fmt: skip
    return _propose(args, config, proposal)


def _cancel(args: argparse.Namespace, config: RegistryConfig) -> int:
    """A cancellation names the cancelling Party and purpose when asked (``--purpose``), as a
    voluntary cancellation always does."""
    kind = (
        TransactionType.VOLUNTARY_CANCELLATION if args.voluntary else TransactionType.CANCELLATION
    )
    named = args.voluntary or args.purpose or args.first_transfer
    if named and not args.purpose:
        raise Refusal(Code.USE_DETAILS_INVALID, "say what the units are cancelled for: --purpose")
    proposal = Proposal(
        kind, args.source, config.registry_id, args.to or "", args.serials,
        use=_use_details(args, config) if named else None,
        first_transfer=_by_use(args, config),
    )  # fmt: skip
    return _propose(args, config, proposal)


def _holdings(args: argparse.Namespace, config: RegistryConfig) -> int:
    blocks = run_in_books(args, config, lambda r, c: store.all_holdings(c, config.registry_id))
    rows = [
        {
            "account": b.attributes.holder.account_id,
            "space": b.attributes.unit.originating_registry,
            "serial_first": b.serial_first,
            "serial_last": b.serial_last,
            "units": b.unit_count,
            "cooperative_approach": b.attributes.unit.cooperative_approach,
            "vintage": b.attributes.unit.vintage,
            "state": b.attributes.unit.state.name.lower(),
            "unit_kind": b.attributes.unit.unit_kind.name.lower(),
            "first_transferring_party": b.attributes.unit.first_transferring_party,
            "authorization_id": b.attributes.unit.authorization_id,
        }
        for b in blocks
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        print(
            f"{row['account']:<16} {row['space']}:{row['serial_first']}-{row['serial_last']:<12}"
            f" {row['units']:>14,} {row['cooperative_approach']} {row['vintage']} {row['state']}"
        )
    return 0


def _transaction_rows(args: argparse.Namespace, config: RegistryConfig) -> list[dict[str, Any]]:
    records = run_in_books(args, config, lambda r, c: store.list_transactions(c))
    rows = []
    for record in records:
        message = transaction_pb2.Transaction.FromString(record.body)
        rows.append(
            {
                "transaction_id": record.transaction_id,
                "role": record.role,
                "type": TransactionType(message.type).name.lower(),
                "status": record.status.name.lower(),
                "status_number": record.status.value,
                "quantity": message.quantity,
                "codes": [code for code, _ in record.results],
            }
        )
    return rows


def _transactions(args: argparse.Namespace, config: RegistryConfig) -> int:
    rows = _transaction_rows(args, config)
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        codes = ",".join(str(code) for code in row["codes"])
        print(f"{row['transaction_id']:<12} {row['role']:<9} {row['type']:<22} "
              f"{row['status']:<10} {row['quantity']:>14,} {codes}")  # fmt: skip
    return 0


def _remove_space(args: argparse.Namespace, config: RegistryConfig) -> int:
    """Take a test's serial space (the conformance kit's KIT01) out of the books, so that
    reconciliations with the real hub agree again; its waiting transactions are cancelled."""
    if args.space == config.registry_id:
        print(f"{args.space} is this registry's own serial space; it is never removed",
              file=sys.stderr)  # fmt: skip
        return 2

    def remove(registry: RegistryEngine, unit: Unit) -> store.Removed:
        connection = unit.connection
        removed = store.remove_space(connection, config.registry_id, args.space)
        for transaction_id in removed.waiting:
            local = store.get_transaction(connection, transaction_id)
            assert local is not None, transaction_id
            message = transaction_pb2.Transaction.FromString(local.body)
            registry.settle(unit, message, Status.CANCELLED)
        return removed

    removed = change_books(args, config, remove)
    print(f"removed {removed.blocks} block(s), {removed.units:,} units, of serial space "
          f"{args.space} from {config.registry_id}'s books; cancelled "
          f"{len(removed.waiting)} waiting transaction(s), dropped {removed.messages} "
          f"outbox message(s) ({args.reason})")  # fmt: skip
    return 0


def _wait(args: argparse.Namespace, config: RegistryConfig) -> int:
    deadline = time.monotonic() + args.timeout
    own = args.transaction_id.startswith(f"{config.registry_id}-")
    while time.monotonic() < deadline:
        local = run_in_books(
            args, config, lambda r, c: store.get_transaction(c, args.transaction_id)
        )
        if local is None and own:  # this registry's own proposals are recorded when made
            print(f"{args.transaction_id}: no such transaction of {config.registry_id}",
                  file=sys.stderr)  # fmt: skip
            return 1
        if local is not None and local.status.final:
            codes = ",".join(str(code) for code, _ in local.results)
            print(f"{args.transaction_id} {local.status.name.lower()} {codes}".rstrip())
            return 0 if local.status is Status.COMPLETED else 1  # a bad outcome is non-zero
        time.sleep(0.1)
    print(f"{args.transaction_id}: no final status within {args.timeout} s", file=sys.stderr)
    return 1


def _article6_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Authorization and first transfer of mitigation outcomes."""
    authorize = command(
        "authorize", _authorize, "propose an authorization, or a new version of one"
    )
    authorize.add_argument("--from", dest="source", help="account of the outcomes to bind")
    authorize.add_argument("--serials", type=serials, action="append", help="outcomes to bind")
    authorize.add_argument("--authorization-id", required=True)
    authorize.add_argument("--version", type=int, default=1, help="1, then one more per change")
    authorize.add_argument("--ca", required=True)
    authorize.add_argument("--purpose", choices=sorted(PURPOSES), default="ndc")
    authorize.add_argument(
        "--definition", choices=sorted(DEFINITIONS), default="na",
        help="first-transfer definition for OIMP (na: use towards an NDC only)",
    )  # fmt: skip
    authorize.add_argument("--cap", type=int, default=0, help="authorized quantity (0: no cap)")
    authorize.add_argument("--vintages", required=True, help="e.g. 2021-2025")
    authorize.add_argument("--use-years", help="timeframe of use, e.g. 2026-2030 (default: open)")
    authorize.add_argument("--party", help="authorizing Party (default: this registry's)")
    authorize.add_argument("--authorized-party", action="append", help="ISO-3 (repeat)")
    authorize.add_argument(
        "--entity", action="append", help="NAME;COUNTRY;IDENTIFICATION[;CONDITIONS] (repeat)"
    )
    authorize.add_argument("--revoke", action="store_true", help="this version revokes it")
    first = command("first-transfer", _first_transfer, "propose a first transfer")
    first.add_argument("--from", dest="source", required=True)
    first.add_argument("--serials", required=True, type=serials, action="append")
    first.add_argument("--to-registry", required=True)
    first.add_argument("--to", required=True)
    first.add_argument("--trigger", choices=sorted(TRIGGERS), default="international-transfer")
    first.add_argument("--party", help="first-transferring Party (default: this registry's)")


def build_parser(kind: RegistryKind) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=kind.prog, description=kind.description)
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--config", required=True, type=Path)
        sub.set_defaults(handler=handler)
        return sub

    serve_command = command("serve", lambda a, c: 0, "serve the hub and send the outbox")
    command("check-config", lambda a, c: 0, "check the config file whole, then exit")
    serve_command.add_argument("--log-level", default="INFO", type=str.upper,
                               choices=["DEBUG", "INFO", "WARNING", "ERROR"])  # fmt: skip
    kind.add_commands(command)
    issue = command("issue", _issue, "propose an issuance")
    issue.add_argument("--account", required=True)
    issue.add_argument(
        "--kind", choices=["itmo", "mitigation-outcome"], default="mitigation-outcome",
        help="itmo: the issuance is the first transfer its --authorization defines",
    )  # fmt: skip
    issue.add_argument("--ca", help="cooperative approach (ITMOs)")
    issue.add_argument("--vintage", required=True, type=int)
    issue.add_argument("--serials", required=True, type=serials, action="append")
    issue.add_argument("--purpose", choices=sorted(PURPOSES), default="ndc")
    issue.add_argument("--authorization", help="authorization id (ITMOs)")
    issue.add_argument("--first-transferring-party", help="default: this registry's Party")
    _article6_commands(command)
    for name, handler in (("transfer", _transfer), ("use", _use), ("cancel", _cancel)):
        sub = command(name, handler, f"propose a {name}")
        sub.add_argument("--from", dest="source", required=True)
        sub.add_argument("--serials", required=True, type=serials, action="append")
        sub.add_argument("--to", required=name == "transfer")
        if name == "transfer":
            sub.add_argument("--to-registry", required=True)
        if name in {"use", "cancel"}:
            sub.add_argument("--party", help="using or cancelling Party (default: this registry's)")
            sub.add_argument("--entity", help="using or cancelling entity")
            sub.add_argument(
                "--first-transfer", action="store_true",
                help="outcomes whose authorization defines this as their first transfer",
            )  # fmt: skip
        if name == "use":
            sub.add_argument("--year", type=int, help="the year of use (default: none given)")
            sub.add_argument("--purpose", choices=sorted(PURPOSES), default="ndc")
        if name == "cancel":
            sub.add_argument("--voluntary", action="store_true")
            sub.add_argument("--purpose", choices=sorted(PURPOSES), help="required if --voluntary")
    for name, handler in (("holdings", _holdings), ("transactions", _transactions)):
        command(name, handler, f"show this registry's {name}").add_argument(
            "--json", action="store_true"
        )
    remove = command(
        "remove-space", _remove_space,
        "take a test's serial space (the conformance kit's) out of the books",
    )  # fmt: skip
    remove.add_argument("--space", required=True, help="the serial space, e.g. KIT01")
    remove.add_argument("--reason", required=True, help="why, in words (printed)")
    wait = command("wait", _wait, "wait for a transaction's final status")
    wait.add_argument("transaction_id")
    wait.add_argument("--timeout", type=float, default=30.0)
    return parser


@command_line
def main(kind: RegistryKind, argv: list[str] | None = None) -> int:
    parser = build_parser(kind)
    parser.set_defaults(registry_kind=kind)
    args = finish(parser).parse_args(argv)
    try:
        config = load_config(args.config, kind.own_tables)
        if kind.check is not None:
            kind.check(config)
    except ConfigError as error:  # each names the file, as the hub's do
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"{args.config}: valid ({config.registry_id}, listening on {config.listen}, "
              f"database {config.database})")  # fmt: skip
        return 0
    if args.command == "serve":
        configure_logging(config.registry_id, args.log_level)
        # A StartupError (port taken, database unreachable): one line, status 1 (command_line).
        if kind.serve is not None:
            asyncio.run(kind.serve(config))
        else:
            asyncio.run(serve(config, kind.rules(config), kind.tables))
        return 0
    try:
        result: int = args.handler(args, config)
    except Refusal as refusal:
        print(f"refused: {refusal}", file=sys.stderr)
        return 3
    return result
