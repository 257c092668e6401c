"""``article6-registry``: run the reference Party registry, and operate it.

Beside the shared commands of ``article6.node.cli`` (issue, authorize, first-transfer,
transfer, use, cancel, holdings, transactions, wait, serve):

    article6-registry open-account --config gha01.toml --type holding [--ca CA0001]
    article6-registry close-account --config gha01.toml ACCOUNT
    article6-registry aef --config gha01.toml [--year 2026] [--out GHA-2026-AEF.xlsx]
    article6-registry aef --config gha01.toml --format csv|json [--table actions]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from article6.aef.prefill import registry_party, workbook
from article6.model import AccountType
from article6.node import cli
from article6.node.aef import add_aef_arguments, party_registry_books, print_aef
from article6.node.config import RegistryConfig
from article6.process import progress
from party_registry_stub import accounts

ACCOUNT_TYPES = {
    name.lower().replace("_", "-"): kind for name, kind in AccountType.__members__.items()
}


def _open_account(args: argparse.Namespace, config: RegistryConfig) -> int:
    approaches = frozenset(args.ca or [])
    kind = ACCOUNT_TYPES[args.type]
    account = cli.run_in_books(
        args, config, lambda r, c: accounts.open_account(c, r.registry_id, kind, approaches)
    )
    print(account)
    return 0


def _close_account(args: argparse.Namespace, config: RegistryConfig) -> int:
    if not cli.run_in_books(args, config, lambda r, c: accounts.close_account(c, args.account)):
        print(f"no account {args.account}", file=sys.stderr)
        return 1
    print(f"{args.account} closed")
    return 0


def _aef(args: argparse.Namespace, config: RegistryConfig) -> int:
    """This registry's Party's AEF: the whole workbook, or one table as CSV or JSON."""
    here = config.registry_id
    party = registry_party(here)
    return int(cli.run_in_books(args, config, lambda r, c: print_aef(
        args, party, workbook(party_registry_books(c, here, progress), party, args.year, here)
    )))  # fmt: skip


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    account = command("open-account", _open_account, "open an account")
    account.add_argument("--type", choices=sorted(ACCOUNT_TYPES), default="holding")
    account.add_argument("--ca", action="append", help="linked cooperative approach (repeat)")
    close = command("close-account", _close_account, "close an account to acquisitions")
    close.add_argument("account")
    add_aef_arguments(command("aef", _aef, "AEF prefill: this Party's workbook, or one table"))


KIND = cli.RegistryKind(
    prog="article6-registry",
    rules=lambda config: accounts.AccountRules(config.registry_id),
    tables=(accounts.metadata,),
    add_commands=add_commands,
)


def main(argv: list[str] | None = None) -> int:
    return cli.main(KIND, argv)


if __name__ == "__main__":
    sys.exit(main())
