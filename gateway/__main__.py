"""``article6-hub``: run the hub, and check its audit trail.

    article6-hub serve --config hub.toml
    article6-hub audit-verify --config hub.toml        exit 0 if the trail is whole, 1 if not
    article6-hub audit --config hub.toml [--subject GHA01-7] [--limit 50] [--json]

The audit commands read the hub's database directly (they need no running hub), so they run
on the hub's host, or wherever a read-only copy of its database is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from article6.config_check import ConfigError
from article6.help import finish
from article6.keys import read_key_file
from article6.logs import configure_logging
from article6.process import command_line
from article6.version import add_version
from gateway.audit import entry_line, verdict_lines
from gateway.config import HubConfig, load_config
from gateway.server import serve
from gateway.storage import audit
from gateway.storage.database import Database


def _audit_verify(config: HubConfig, args: argparse.Namespace) -> int:
    directory = read_key_file(config.keys)
    database = Database(config.database)
    try:
        with database.read_engine.connect() as connection:
            head, verdict = audit.verified(
                connection, audit.signed_by_hub(directory, config.registry_id)
            )
    finally:
        database.close()
    if args.json:
        print(json.dumps({"intact": verdict.intact, "entries": verdict.records,
                          "head": {"seq": head.seq, "hash": head.hash, "key_id": head.key_id},
                          "problems": verdict.problems}))  # fmt: skip
    else:
        print("\n".join(verdict_lines(verdict, head)))
    return 0 if verdict.intact else 1


def _audit_list(config: HubConfig, args: argparse.Namespace) -> int:
    database = Database(config.database)
    try:
        found = database.read_now(lambda c: audit.recent(c, args.subject, args.limit))
    finally:
        database.close()
    for entry, _ in reversed(found):
        if args.json:
            print(json.dumps(entry.__dict__, sort_keys=True))
            continue
        print(entry_line(entry, audit.detail_json(entry.detail)))
    return 0


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="article6-hub", description="The Article 6 hub.")
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser("serve", help="serve registries and operators")
    serve_command.add_argument("--log-level", default="INFO", type=str.upper,
                               choices=["DEBUG", "INFO", "WARNING", "ERROR"])  # fmt: skip
    check = commands.add_parser("audit-verify", help="check the audit trail's hash chain")
    check.add_argument("--json", action="store_true")
    listing = commands.add_parser("audit", help="show the newest audit entries")
    listing.add_argument("--subject", default="", help="a transaction, run or registry id")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    checked = commands.add_parser("check-config", help="check the config file whole, then exit")
    for command in (serve_command, check, listing, checked):
        command.add_argument("--config", required=True, type=Path)
    args = finish(parser).parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"article6-hub: {error}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"{args.config}: valid ({config.registry_id}, listening on {config.listen}, "
              f"{len(config.registries)} registries, database {config.database})")  # fmt: skip
        return 0
    if args.command == "audit-verify":
        return _audit_verify(config, args)
    if args.command == "audit":
        return _audit_list(config, args)
    configure_logging("hub", args.log_level)
    asyncio.run(serve(config))  # a StartupError: one line, status 1 (command_line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
