"""The ``article6`` command: tools shared by every part of the network.

article6 pki init --out DIR --registry HUB --registry GHA01 ...
article6 codes                      the response-code catalogue
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from article6.codes import CATALOGUE, Code, Refusal
from article6.pki import init_pki


def _pki_init(args: argparse.Namespace) -> int:
    try:
        key_ids = init_pki(Path(args.out), args.registry)
    except FileExistsError as error:
        print(f"refusing to overwrite {error.filename}", file=sys.stderr)
        return 1
    for registry, key_id in zip(args.registry, key_ids, strict=True):
        print(f"{registry:<16} signing key {key_id}")
    print(f"wrote CA, TLS certificates, signing keys and keys.toml to {args.out}")
    return 0


def _codes(_: argparse.Namespace) -> int:
    for code in Code:
        info = CATALOGUE[code]
        print(f"{code.value}  {code.name:<38} {info.meaning}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="article6", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pki = commands.add_parser("pki", help="development PKI")
    pki_commands = pki.add_subparsers(dest="pki_command", required=True)
    init = pki_commands.add_parser("init", help="write a CA, TLS certificates and signing keys")
    init.add_argument("--out", required=True, help="folder to write (files are never overwritten)")
    init.add_argument(
        "--registry", action="append", required=True, help="registry id (repeat for each)"
    )
    init.set_defaults(handler=_pki_init)
    codes = commands.add_parser("codes", help="print the response-code catalogue")
    codes.set_defaults(handler=_codes)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except (ValueError, Refusal) as error:  # bad registry ids and the like: a message, no traceback
        print(f"article6: {error}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
