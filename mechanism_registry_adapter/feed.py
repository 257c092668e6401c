"""A reference mechanism-registry feed: issues A6.4ERs with their deductions and writes the
first-transfer instructions for them, for demos and tests.

    python -m mechanism_registry_adapter.feed --issuance-id ISS-0001 --activity A64-GHA-0001 \\
        --host GHA --vintage 2025 --first-serial 1 --gross 10000 --instructions 4 \\
        --authorization-id GHA-A64-0001 --to UNIR-2-xx [--to-registry UNIR] \\
        [--purpose ndc] [--kind authorized] [--format jsonl|csv] [--prefix I-]

An issuance of ``gross`` units from ``first-serial`` is laid out as the net first, then the
share of proceeds (5%, rounded up), then the OMGE cancellation (2%, rounded up); the net is
split into ``instructions`` instructions of (nearly) equal size, all to one account.
"""

from __future__ import annotations

import argparse
import sys

from article6.help import finish
from article6.v1 import mechanism_pb2, units_pb2
from mechanism_registry_adapter.formats import KINDS, PURPOSES, write_csv, write_json_lines
from mechanism_registry_adapter.instructions import AuthorizationKind, Rounding, deductions


def issuance(
    issuance_id: str, first_serial: int, gross: int, rounding: Rounding = Rounding.DOWN
) -> mechanism_pb2.IssuanceRecord:
    """An issuance with its deductions at the end: net, share of proceeds, OMGE (a deduction
    of no whole unit left unset)."""
    share, omge = deductions(gross, rounding)
    last = first_serial + gross - 1
    net_last = last - share - omge
    record = mechanism_pb2.IssuanceRecord(
        issuance_id=issuance_id,
        issued=mechanism_pb2.AerSerials(serial_first=first_serial, serial_last=last),
    )
    if share:
        record.share_of_proceeds.serial_first = net_last + 1
        record.share_of_proceeds.serial_last = net_last + share
    if omge:
        record.omge.serial_first = last - omge + 1
        record.omge.serial_last = last
    return record


def net_of(
    record: mechanism_pb2.IssuanceRecord, rounding: Rounding = Rounding.DOWN
) -> tuple[int, int]:
    gross = record.issued.serial_last - record.issued.serial_first + 1
    share, omge = deductions(gross, rounding)
    return record.issued.serial_first, record.issued.serial_last - share - omge


def template(
    *,
    activity_id: str,
    host_party: str,
    vintage: int,
    authorization_id: str,
    acquiring_account: str,
    acquiring_registry: str = "",
    purpose: int = units_pb2.PURPOSE_NDC,
    kind: AuthorizationKind = AuthorizationKind.AUTHORIZED,
) -> mechanism_pb2.FirstTransferInstruction:
    """What every instruction of one activity's issuance shares (no id, serials or issuance)."""
    return mechanism_pb2.FirstTransferInstruction(
        activity_id=activity_id,
        host_party=host_party,
        vintage=vintage,
        authorization=mechanism_pb2.AerAuthorization(
            authorization_id=authorization_id,
            authorizing_party=host_party,
            purpose=units_pb2.Purpose.ValueType(purpose),
            kind=mechanism_pb2.AerAuthorizationKind.ValueType(kind.value),
        ),
        acquiring_registry=acquiring_registry,
        acquiring_account=acquiring_account,
    )


def instructions(
    record: mechanism_pb2.IssuanceRecord,
    shared: mechanism_pb2.FirstTransferInstruction,
    count: int = 1,
    prefix: str = "I-",
) -> list[mechanism_pb2.FirstTransferInstruction]:
    """The net split into ``count`` instructions, numbered from ``prefix``000001."""
    first, last = net_of(record)
    net = last - first + 1
    assert 1 <= count <= net, (count, net)
    size, serial, made = net // count, first, []
    for number in range(1, count + 1):
        end = last if number == count else serial + size - 1
        one = mechanism_pb2.FirstTransferInstruction()
        one.CopyFrom(shared)
        one.instruction_id = f"{prefix}{number:06d}"
        one.blocks.add(serial_first=serial, serial_last=end)
        one.issuance.CopyFrom(record)
        made.append(one)
        serial = end + 1
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mechanism_registry_adapter.feed",
        description="Issue A6.4ERs and write first-transfer instructions for them.",
    )
    parser.add_argument("--issuance-id", required=True)
    parser.add_argument("--activity", required=True)
    parser.add_argument("--host", required=True, help="host Party (ISO alpha-3)")
    parser.add_argument("--vintage", required=True, type=int)
    parser.add_argument("--first-serial", type=int, default=1)
    parser.add_argument("--gross", required=True, type=int)
    parser.add_argument("--instructions", type=int, default=1)
    parser.add_argument("--authorization-id", required=True)
    parser.add_argument("--purpose", choices=sorted(PURPOSES), default="ndc")
    parser.add_argument("--kind", choices=sorted(KINDS), default="authorized")
    parser.add_argument("--to", required=True, help="acquiring account")
    parser.add_argument("--to-registry", default="", help="default: the international registry")
    parser.add_argument("--prefix", default="I-")
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    args = finish(parser).parse_args(argv)
    record = issuance(args.issuance_id, args.first_serial, args.gross)
    shared = template(
        activity_id=args.activity, host_party=args.host, vintage=args.vintage,
        authorization_id=args.authorization_id, acquiring_account=args.to,
        acquiring_registry=args.to_registry, purpose=PURPOSES[args.purpose].value,
        kind=KINDS[args.kind],
    )  # fmt: skip
    made = instructions(record, shared, args.instructions, args.prefix)
    sys.stdout.write(write_csv(made) if args.format == "csv" else write_json_lines(made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
