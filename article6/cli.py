"""The ``article6`` command: tools shared by every part of the network.

article6 pki init --out DIR --registry HUB --registry GHA01 ...
article6 pki add --pki DIR --registry SGP01     credentials for one more registry
article6 pki rotate --pki DIR --registry GHA01 [--overlap-hours 24]
                                    a new signing key; the old one expires after the overlap
article6 codes                      the response-code catalogue
article6 aef check FILE [--json]    check an AEF workbook cell by cell (exit 1 on any finding)
article6 conformance registry --endpoint HOST:PORT --registry GHA01 --account GHA01-1001-57 \
    --pki DIR [--hub-id HUB]        play the hub against a registry (article6.conformance)
article6 conformance hub --endpoint HOST:PORT --registry GHA01 --pki DIR
                                    play a registry against the hub
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

from article6.aef.check import check_workbook
from article6.aef.workbook import NOT_A_WORKBOOK
from article6.codes import CATALOGUE, Code, Refusal
from article6.conformance import HubKit, HubUnderTest, RegistryKit, RegistryUnderTest
from article6.help import finish
from article6.pki import UnknownRegistry, add_registry, init_pki, rotate_signing_key
from article6.process import command_line
from article6.version import add_version


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


def _pki_add(args: argparse.Namespace) -> int:
    folder = Path(args.pki)
    if not (folder / "ca.key").exists():
        print(f"article6: {folder} holds no PKI (no ca.key): make one with pki init",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        key_id = add_registry(folder, args.registry)
    except FileExistsError as error:
        print(f"article6: {args.registry} is already in {folder} ({error.filename})",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"{args.registry:<16} signing key {key_id}; its TLS credentials are in "
          f"{folder / args.registry}. Publish keys.toml to every receiver (the hub reloads it "
          "on SIGHUP).")  # fmt: skip
    return 0


def _pki_rotate(args: argparse.Namespace) -> int:
    try:
        old, new = rotate_signing_key(
            Path(args.pki), args.registry, timedelta(hours=args.overlap_hours)
        )
    except UnknownRegistry as error:
        print(f"article6: {error}", file=sys.stderr)
        return 2
    print(f"{args.registry}: new signing key {new}; key {old} stays valid for "
          f"{args.overlap_hours:g} h. Restart {args.registry} to sign with the new key, and "
          "publish keys.toml to every receiver (the hub reloads it on SIGHUP).")  # fmt: skip
    return 0


def _codes(_: argparse.Namespace) -> int:
    for code in Code:
        info = CATALOGUE[code]
        print(f"{code.value}  {code.name:<38} {info.meaning}")
    return 0


def _aef_check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"article6: no such file: {path}", file=sys.stderr)
        return 2
    try:
        findings = check_workbook(path)
    except NOT_A_WORKBOOK as error:
        print(f"article6: {path} is not an AEF workbook (.xlsx): {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([finding.__dict__ for finding in findings], indent=2))
    else:
        for finding in findings:
            print(finding)
        print(f"{path}: {len(findings)} findings" if findings else f"{path}: every cell valid")
    return 1 if findings else 0


def _conformance(args: argparse.Namespace) -> int:
    if args.kit == "hub":
        hub = HubUnderTest(
            endpoint=args.endpoint, registry_id=args.registry, pki=Path(args.pki),
            hub_id=args.hub_id, approach=args.ca, vintage=args.vintage,
        )  # fmt: skip
        battery = HubKit(hub).run()
    else:
        target = RegistryUnderTest(
            endpoint=args.endpoint, registry_id=args.registry, account=args.account,
            pki=Path(args.pki), hub_id=args.hub_id, space=args.space, approach=args.ca,
            vintage=args.vintage, listen=args.listen,
            recovery_timeout_seconds=args.recovery_timeout,
        )  # fmt: skip
        battery = RegistryKit(target).run()
    print(battery.table())
    failed = sum(not check.passed for check in battery.checks)
    print(f"\n{len(battery.checks) - failed} passed, {failed} failed")
    if args.kit == "registry":
        print(
            f"\nThe registry's books now hold the kit's units (serial space {args.space}), "
            "which the hub's ledger has not: take them out before it reconciles with a real "
            "hub (an article6.node registry: article6-registry remove-space --config "
            f"<config> --space {args.space} --reason 'conformance kit'; docs/CONFORMANCE.md)"
        )
    return 0 if battery.passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="article6", description="Tools shared by every part of the network."
    )
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    pki = commands.add_parser("pki", help="development PKI")
    pki_commands = pki.add_subparsers(dest="pki_command", required=True)
    init = pki_commands.add_parser("init", help="write a CA, TLS certificates and signing keys")
    init.add_argument("--out", required=True, help="folder to write (files are never overwritten)")
    init.add_argument(
        "--registry", action="append", required=True, help="registry id (repeat for each)"
    )
    init.set_defaults(handler=_pki_init)
    add = pki_commands.add_parser("add", help="issue credentials for one more registry")
    add.add_argument("--pki", required=True, help="the PKI folder (made by pki init)")
    add.add_argument("--registry", required=True, help="its id (or a client identity)")
    add.set_defaults(handler=_pki_add)
    rotate = pki_commands.add_parser("rotate", help="give a registry a new signing key")
    rotate.add_argument("--pki", required=True, help="the PKI folder")
    rotate.add_argument("--registry", required=True)
    rotate.add_argument(
        "--overlap-hours", type=float, default=24.0, help="how long the old key stays valid"
    )
    rotate.set_defaults(handler=_pki_rotate)
    codes = commands.add_parser("codes", help="print the response-code catalogue")
    codes.set_defaults(handler=_codes)
    aef = commands.add_parser("aef", help="the agreed electronic format (AEF) workbook")
    aef_commands = aef.add_subparsers(dest="aef_command", required=True)
    check = aef_commands.add_parser("check", help="check a workbook cell by cell")
    check.add_argument("file", help="the .xlsx workbook")
    check.add_argument("--json", action="store_true", help="the findings as a JSON list")
    check.set_defaults(handler=_aef_check)
    kit = commands.add_parser("conformance", help="the conformance kit")
    kits = kit.add_subparsers(dest="kit", required=True)
    registry = kits.add_parser("registry", help="play the hub against a registry")
    registry.add_argument("--endpoint", required=True, help="the registry's Registry service")
    registry.add_argument("--registry", required=True, help="its registry id")
    registry.add_argument("--account", required=True, help="an open account taking --ca units")
    registry.add_argument("--pki", required=True, help="folder with the hub's credentials")
    registry.add_argument("--hub-id", default="HUB")
    registry.add_argument("--space", default="KIT01", help="serial space of the kit's units")
    registry.add_argument("--ca", default="CA0001")
    registry.add_argument("--vintage", type=int, default=2024)
    registry.add_argument(
        "--listen", help="serve the Hub here for the status-recovery check (the registry's "
        "hub endpoint must point here); without it that check is skipped",
    )  # fmt: skip
    registry.add_argument(
        "--recovery-timeout", type=float, default=120.0,
        help="seconds the registry has to find out a lost outcome by itself",
    )  # fmt: skip
    registry.set_defaults(handler=_conformance)
    hub = kits.add_parser("hub", help="play a registry against the hub")
    hub.add_argument("--endpoint", required=True, help="the hub's Hub service")
    hub.add_argument("--registry", required=True, help="the registry the kit plays")
    hub.add_argument("--pki", required=True, help="folder with that registry's credentials")
    hub.add_argument("--hub-id", default="HUB")
    hub.add_argument("--ca", default="CA0001", help="a cooperative approach it may issue under")
    hub.add_argument("--vintage", type=int, default=2024)
    hub.set_defaults(handler=_conformance)
    return parser


@command_line
def main(argv: list[str] | None = None) -> int:
    args = finish(build_parser()).parse_args(argv)
    try:
        result: int = args.handler(args)
    except (ValueError, Refusal) as error:  # bad registry ids and the like: a message, no traceback
        print(f"article6: {error}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
