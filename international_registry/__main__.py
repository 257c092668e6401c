"""``article6-ir``: run the international registry (with its additional registry services),
and operate it as the secretariat.

Beside the shared commands of ``article6.node.cli`` (issue, authorize, first-transfer,
transfer, use, cancel, holdings, transactions, wait, serve):

    article6-ir request-section --config ir.toml --party SGP --submitted-by "NFP name" \\
        [--focal-point national|additional] --administrator NAME [...] [--document NAME ...]
    article6-ir validate-request --config ir.toml REQ-0001
    article6-ir reject-request --config ir.toml REQ-0001 --reason "..."
    article6-ir open-section --config ir.toml REQ-0001          # opens provisionally
    article6-ir verify-section --config ir.toml SGP             # identity verified
    article6-ir open-account --config ir.toml --party SGP --type holding [--ars] \\
        [--holder NAME] [--ca CA0001]
    article6-ir aef --config ir.toml --party SGP [--year 2026] [--out SGP-2026-AEF.xlsx]
                                                                # AEF prefill: the workbook
    article6-ir aef --config ir.toml --party SGP --format csv|json [--table actions]
                                                                # one of its five tables
    article6-ir focal-point --config ir.toml --party SGP --email nfp@example.org \
        --name "NAME" [--kind national|additional]              # the portal's directory
    article6-ir focal-points --config ir.toml [--party SGP]
    article6-ir remove-focal-point --config ir.toml nfp@example.org
    article6-ir verify-identity --config ir.toml otieno@ken.example [--party KEN]
    article6-ir account-requests --config ir.toml
    article6-ir decide-account --config ir.toml ACR-0001 --approve | --reject --reason "..."

The config file's ``[international]`` table sets what a provisional section may do,
``provisional_may = ["acquire", "issue"]`` (the default; the other actions are "transfer",
"use", "cancel", "authorize" and "first-transfer"), and where the secretariat's admin service
listens: ``admin_listen = "127.0.0.1:7021"``, ``admin_identities = ["OPERATOR"]``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable

from sqlalchemy import Connection

from article6.config_check import ConfigError
from article6.identifiers import check_party_code
from article6.model import AccountType
from article6.node import cli
from article6.node.aef import add_aef_arguments, print_aef
from article6.node.config import RegistryConfig, check_table
from article6.node.engine import RegistryEngine
from article6.process import progress
from international_registry import aef, sections
from international_registry.portal import procedure
from international_registry.portal import store as portal_store
from international_registry.portal.app import templates
from international_registry.portal.mail import Mailer
from international_registry.portal.settings import portal_settings
from international_registry.rules import from_config
from international_registry.server import TABLES, serve

ACCOUNT_TYPES = {
    name.lower().replace("_", "-"): kind for name, kind in AccountType.__members__.items()
}


def _say(args: argparse.Namespace, config: RegistryConfig, work: Callable[..., object]) -> int:
    try:
        print(cli.run_in_books(args, config, work))
    except sections.SectionError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 3
    return 0


def _request(args: argparse.Namespace, config: RegistryConfig) -> int:
    focal = sections.FocalPoint(args.focal_point)
    return _say(args, config, lambda r, c: sections.submit_request(
        c, args.party, args.submitted_by, focal, args.administrator, args.document or []
    ))  # fmt: skip


def _validate(args: argparse.Namespace, config: RegistryConfig) -> int:
    def validate(r: RegistryEngine, c: Connection) -> str:
        sections.decide_request(c, args.request_id, valid=True)
        return f"{args.request_id} validated"

    return _say(args, config, validate)


def _reject(args: argparse.Namespace, config: RegistryConfig) -> int:
    def reject(r: RegistryEngine, c: Connection) -> str:
        sections.decide_request(c, args.request_id, valid=False, reason=args.reason)
        return f"{args.request_id} rejected"

    return _say(args, config, reject)


def _open_section(args: argparse.Namespace, config: RegistryConfig) -> int:
    def open_section(r: RegistryEngine, c: Connection) -> str:
        party = sections.open_section(c, args.request_id)
        return f"section {party} open, provisionally"

    return _say(args, config, open_section)


def _verify(args: argparse.Namespace, config: RegistryConfig) -> int:
    def verify(r: RegistryEngine, c: Connection) -> str:
        sections.verify_section(c, args.party)
        return f"section {args.party} verified"

    return _say(args, config, verify)


def _open_account(args: argparse.Namespace, config: RegistryConfig) -> int:
    kind = ACCOUNT_TYPES[args.type]
    return _say(args, config, lambda r, c: sections.open_account(
        c, config.registry_id, args.party, kind, ars=args.ars, holder=args.holder or "",
        cooperative_approaches=frozenset(args.ca or []),
    ))  # fmt: skip


def _aef(args: argparse.Namespace, config: RegistryConfig) -> int:
    """The Party's AEF: the whole workbook (xlsx), or one table as CSV or JSON."""
    section = from_config(config).section_space(args.party)
    return int(cli.run_in_books(args, config, lambda r, c: print_aef(
        args, args.party,
        aef.workbook(c, config.registry_id, args.party, args.year, section, progress),
    )))  # fmt: skip


def _focal_point(args: argparse.Namespace, config: RegistryConfig) -> int:
    entry = portal_store.FocalPointEntry(
        args.email, check_party_code(args.party), args.name,
        portal_store.FocalPointKind(args.kind),
    )  # fmt: skip
    cli.run_in_books(args, config, lambda r, c: portal_store.put_focal_point(c, entry))
    print(f"{portal_store.normal_email(args.email)}: {args.kind} focal point of {args.party}")
    return 0


def _focal_points(args: argparse.Namespace, config: RegistryConfig) -> int:
    listed = cli.run_in_books(
        args, config, lambda r, c: portal_store.list_focal_points(c, args.party or "")
    )
    for entry in listed:
        print(f"{entry.party}  {entry.kind.value:<10}  {entry.email}  {entry.name}")
    return 0


def _portal_step(
    args: argparse.Namespace, config: RegistryConfig,
    step: Callable[[Connection, Mailer, procedure.Who], procedure.Done],
) -> procedure.Done | None:  # fmt: skip
    """A secretariat step of the portal from the command line: the same rules, audit trail
    and e-mails (through the config's ``[portal]`` SMTP server) as on its pages."""
    raw = config.document.get("portal")
    if raw is None:
        print("this registry's config has no [portal] table", file=sys.stderr)
        return None
    settings = portal_settings(raw, config.base, config.registry_id)
    mailer = Mailer(settings.smtp, templates())
    officer = procedure.Who(f"{getpass.getuser()} (article6-ir)", secretariat=True)
    try:
        done: procedure.Done = cli.run_in_books(args, config, lambda r, c: step(c, mailer, officer))
    except procedure.Refused as error:
        print(f"refused: {error}", file=sys.stderr)
        return None
    for mail in done.mails:
        asyncio.run(mailer.send(mail))
    return done


def _verify_identity(args: argparse.Namespace, config: RegistryConfig) -> int:
    done = _portal_step(args, config, lambda c, mailer, officer: procedure.verify_identities(
        c, mailer, officer, args.email, args.party or ""))  # fmt: skip
    if done is None:
        return 1
    print("\n".join(mail.subject for mail in done.mails))
    return 0


def _account_requests(args: argparse.Namespace, config: RegistryConfig) -> int:
    rows = cli.run_in_books(args, config, lambda r, c: portal_store.list_account_requests(c))
    for row in rows:
        ars = " (ARS)" if row.ars else ""
        print(f"{row.request_id}  {row.party}  {row.status:<9}  {row.account_type}{ars}  "
              f"{row.holder or row.party}  {row.account_id}")  # fmt: skip
    return 0


def _decide_account(args: argparse.Namespace, config: RegistryConfig) -> int:
    done = _portal_step(args, config, lambda c, mailer, officer: procedure.decide_account(
        c, mailer, officer, args.request_id, args.approve, args.reason or "",
        config.registry_id))  # fmt: skip
    if done is None:
        return 1
    print(f"{args.request_id}: account {done.result} opened" if args.approve
          else f"{args.request_id}: rejected")  # fmt: skip
    return 0


def _remove_focal_point(args: argparse.Namespace, config: RegistryConfig) -> int:
    if not cli.run_in_books(
        args, config, lambda r, c: portal_store.remove_focal_point(c, args.email)
    ):
        print(f"no focal point {args.email}", file=sys.stderr)
        return 1
    print(f"{args.email} removed")
    return 0


INTERNATIONAL_KEYS = frozenset({"provisional_may", "section_registry_id", "admin_listen",
                                "admin_identities", "intake_readers"})  # fmt: skip


def check_config(config: RegistryConfig) -> None:
    """The [international] and [portal] tables, as the registry will read them."""
    check_table(config, "international", INTERNATIONAL_KEYS)
    try:
        from_config(config)
        if "portal" in config.document:
            portal_settings(config.document["portal"], config.base, config.registry_id)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{config.path}: {error}") from None


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    request = command("request-section", _request, "record a section opening request")
    request.add_argument("--party", required=True)
    request.add_argument("--submitted-by", required=True, help="who submitted it (a name)")
    request.add_argument(
        "--focal-point",
        choices=[f.value for f in sections.FocalPoint],
        default="national",
        help="the kind of focal point who submitted it",
    )
    request.add_argument("--administrator", action="append", required=True,
                         help="a section administrator's name or e-mail (repeat)")  # fmt: skip
    request.add_argument("--document", action="append", help="a supporting document (repeat)")
    command("validate-request", _validate, "validate a request").add_argument("request_id")
    reject = command("reject-request", _reject, "reject a request, with the reason")
    reject.add_argument("request_id")
    reject.add_argument("--reason", required=True)
    command("open-section", _open_section, "open a section provisionally").add_argument(
        "request_id"
    )
    command("verify-section", _verify, "remove the provisional status").add_argument("party")
    account = command("open-account", _open_account, "open an account in a section")
    account.add_argument("--party", required=True)
    account.add_argument("--type", choices=sorted(ACCOUNT_TYPES), default="holding")
    account.add_argument(
        "--ars", action="store_true", help="an additional registry services account"
    )
    account.add_argument("--holder", help="the entity holding it (default: the Party)")
    account.add_argument("--ca", action="append", help="linked cooperative approach (repeat)")
    focal = command("focal-point", _focal_point, "add or change a focal point (the portal's)")
    focal.add_argument("--party", required=True, help="ISO 3166-1 alpha-3")
    focal.add_argument("--email", required=True, help="their e-mail address (their sign-in)")
    focal.add_argument("--name", required=True, help="their name, as the portal shows it")
    focal.add_argument(
        "--kind",
        choices=[k.value for k in portal_store.FocalPointKind],
        default="national",
        help="national focal point, or an additional one",
    )
    command("focal-points", _focal_points, "the focal-point directory").add_argument("--party")
    command("remove-focal-point", _remove_focal_point, "remove a focal point").add_argument("email")
    verify = command("verify-identity", _verify_identity, "record a person's identity verified")
    verify.add_argument("email")
    verify.add_argument("--party", help="only their role for this Party")
    command("account-requests", _account_requests, "the portal's account requests")
    decide = command("decide-account", _decide_account, "approve or reject an account request")
    decide.add_argument("request_id")
    choice = decide.add_mutually_exclusive_group(required=True)
    choice.add_argument("--approve", action="store_true", help="open the account")
    choice.add_argument("--reject", dest="approve", action="store_false", help="refuse it")
    decide.add_argument("--reason", help="required with --reject")
    export = command("aef", _aef, "AEF prefill: a Party's workbook, or one of its tables")
    export.add_argument("--party", required=True)
    add_aef_arguments(export)


KIND = cli.RegistryKind(
    prog="article6-ir",
    rules=from_config,
    tables=TABLES,
    add_commands=add_commands,
    serve=serve,
    description="Run and operate the international registry (with its additional registry "
    "services and its Party-section portal), as the secretariat.",
    own_tables=frozenset({"international", "portal"}),
    check=check_config,
)


def main(argv: list[str] | None = None) -> int:
    return cli.main(KIND, argv)


if __name__ == "__main__":
    sys.exit(main())
