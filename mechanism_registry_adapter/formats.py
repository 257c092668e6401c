"""Instructions as they arrive: protobuf messages, JSON Lines and CSV (docs/MECHANISM.md).

JSON Lines holds one ``article6.v1.FirstTransferInstruction`` per line in the protobuf JSON
mapping (field names as in the .proto or lowerCamelCase, enums by name). CSV holds one serial
range per row, in the columns of ``CSV_COLUMNS``; consecutive rows with the same
instruction_id form one instruction with several ranges.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from google.protobuf import json_format

from article6.blocks import SerialRange
from article6.codes import Code, Refusal
from article6.model import Purpose
from article6.v1 import mechanism_pb2
from article6.wire import enum_value
from mechanism_registry_adapter.instructions import (
    AerAuthorization,
    AuthorizationKind,
    Instruction,
    Issuance,
    serials,
)

CSV_COLUMNS = (
    "instruction_id", "activity_id", "host_party", "vintage", "serial_first", "serial_last",
    "authorization_id", "authorizing_party", "purpose", "authorization_kind",
    "cooperative_approach", "vintage_first", "vintage_last", "acquiring_registry",
    "acquiring_account", "issuance_id", "issued_first", "issued_last", "share_of_proceeds_first",
    "share_of_proceeds_last", "omge_first", "omge_last",
)  # fmt: skip
PURPOSES = {"ndc": Purpose.NDC, "oimp": Purpose.OIMP, "ndc-and-oimp": Purpose.NDC_AND_OIMP}
KINDS = {
    "authorized": AuthorizationKind.AUTHORIZED,
    "mitigation-contribution": AuthorizationKind.MITIGATION_CONTRIBUTION,
}


def digest(message: mechanism_pb2.FirstTransferInstruction) -> str:
    """What idempotency compares: the instruction's deterministic bytes."""
    return hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()


def instruction(
    message: mechanism_pb2.FirstTransferInstruction, default_registry: str
) -> Instruction:
    """The domain's instruction; malformed numbers and enums are refused with their codes."""
    granted = message.authorization
    issued = message.issuance
    if not (message.HasField("issuance") and issued.HasField("issued")):
        raise Refusal(Code.REQUIRED_FIELD_MISSING, "no issuance record")
    return Instruction(
        instruction_id=message.instruction_id,
        activity_id=message.activity_id,
        host_party=message.host_party,
        vintage=message.vintage,
        blocks=tuple(
            serials(b.serial_first, b.serial_last, "serials to forward") for b in message.blocks
        ),
        authorization=AerAuthorization(
            authorization_id=granted.authorization_id,
            authorizing_party=granted.authorizing_party,
            purpose=enum_value(Purpose, granted.purpose, Code.REQUIRED_FIELD_MISSING, "purpose"),
            kind=enum_value(
                AuthorizationKind, granted.kind, Code.A64ER_NOT_AUTHORIZED, "authorization kind"
            ),
            cooperative_approach=granted.cooperative_approach,
            vintage_first=granted.vintage_first,
            vintage_last=granted.vintage_last,
        ),
        acquiring_registry=message.acquiring_registry or default_registry,
        acquiring_account=message.acquiring_account,
        issuance=Issuance(
            issuance_id=issued.issuance_id,
            issued=serials(issued.issued.serial_first, issued.issued.serial_last, "issued"),
            share_of_proceeds=_deducted(issued, "share_of_proceeds", "share of proceeds"),
            omge=_deducted(issued, "omge", "OMGE"),
        ),
    )


def _deducted(
    issued: mechanism_pb2.IssuanceRecord, field: str, what: str
) -> tuple[SerialRange, ...]:
    """A deduction's serials; none when the field is unset (no whole unit was due)."""
    if not issued.HasField(field):  # type: ignore[arg-type]
        return ()
    deducted: mechanism_pb2.AerSerials = getattr(issued, field)
    return (serials(deducted.serial_first, deducted.serial_last, what),)


@dataclass(frozen=True)
class Unreadable:
    """A line (JSON Lines) or row (CSV) that is not an instruction at all."""

    line: int
    error: str


def read_json_lines(
    lines: Iterable[str],
) -> Iterator[mechanism_pb2.FirstTransferInstruction | Unreadable]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json_format.Parse(line, mechanism_pb2.FirstTransferInstruction())
        except json_format.ParseError as error:
            yield Unreadable(number, str(error)[:300])


def read_csv(text: Iterable[str]) -> Iterator[mechanism_pb2.FirstTransferInstruction | Unreadable]:
    """Rows to instructions; a row that breaks its instruction makes the whole of it unreadable."""
    reader = csv.DictReader(text)
    current: mechanism_pb2.FirstTransferInstruction | None = None
    for row in reader:
        line = reader.line_num
        try:
            message = _csv_row(row)
        except (KeyError, ValueError) as error:
            yield Unreadable(line, f"row {line}: {error!s}"[:300])
            continue
        if current is not None and current.instruction_id == message.instruction_id:
            if _without_blocks(current) != _without_blocks(message):
                yield Unreadable(line, f"row {line}: differs from the rows before it")
                continue
            current.blocks.extend(message.blocks)
            continue
        if current is not None:
            yield current
        current = message
    if current is not None:
        yield current


def _without_blocks(
    message: mechanism_pb2.FirstTransferInstruction,
) -> mechanism_pb2.FirstTransferInstruction:
    head = mechanism_pb2.FirstTransferInstruction()
    head.CopyFrom(message)
    del head.blocks[:]
    return head


def _number(row: dict[str, str], column: str) -> int:
    text = (row.get(column) or "").strip()
    return int(text) if text else 0


def _csv_row(row: dict[str, str]) -> mechanism_pb2.FirstTransferInstruction:
    missing = [column for column in CSV_COLUMNS if column not in row]
    if missing:
        raise KeyError(f"missing columns {', '.join(missing)}")
    purpose = PURPOSES.get(row["purpose"].strip().lower())
    kind = KINDS.get(row["authorization_kind"].strip().lower())
    return mechanism_pb2.FirstTransferInstruction(
        instruction_id=row["instruction_id"].strip(),
        activity_id=row["activity_id"].strip(),
        host_party=row["host_party"].strip(),
        vintage=_number(row, "vintage"),
        blocks=[
            mechanism_pb2.AerSerials(
                serial_first=_number(row, "serial_first"), serial_last=_number(row, "serial_last")
            )
        ],
        authorization=mechanism_pb2.AerAuthorization(
            authorization_id=row["authorization_id"].strip(),
            authorizing_party=row["authorizing_party"].strip(),
            purpose=purpose.value if purpose else 0,  # type: ignore[arg-type]
            kind=kind.value if kind else 0,  # type: ignore[arg-type]
            cooperative_approach=row["cooperative_approach"].strip(),
            vintage_first=_number(row, "vintage_first"),
            vintage_last=_number(row, "vintage_last"),
        ),
        acquiring_registry=row["acquiring_registry"].strip(),
        acquiring_account=row["acquiring_account"].strip(),
        issuance=mechanism_pb2.IssuanceRecord(
            issuance_id=row["issuance_id"].strip(),
            issued=_serials(row, "issued"),
            share_of_proceeds=_serials(row, "share_of_proceeds"),
            omge=_serials(row, "omge"),
        ),
    )


def _serials(row: dict[str, str], prefix: str) -> mechanism_pb2.AerSerials | None:
    """A range from two cells; None when both are empty (a deduction of no whole unit)."""
    if not row.get(f"{prefix}_first", "").strip() and not row.get(f"{prefix}_last", "").strip():
        return None
    return mechanism_pb2.AerSerials(
        serial_first=_number(row, f"{prefix}_first"), serial_last=_number(row, f"{prefix}_last")
    )


def _cells(issued: mechanism_pb2.IssuanceRecord, field: str) -> dict[str, object]:
    """A deduction's two cells, empty when it is unset (no whole unit was due)."""
    if not issued.HasField(field):  # type: ignore[arg-type]
        return {f"{field}_first": "", f"{field}_last": ""}
    deducted: mechanism_pb2.AerSerials = getattr(issued, field)
    return {f"{field}_first": deducted.serial_first, f"{field}_last": deducted.serial_last}


def write_json_lines(messages: Iterable[mechanism_pb2.FirstTransferInstruction]) -> str:
    out = io.StringIO()
    for message in messages:
        out.write(json_format.MessageToJson(message, indent=None, preserving_proto_field_name=True))
        out.write("\n")
    return out.getvalue()


def write_csv(messages: Iterable[mechanism_pb2.FirstTransferInstruction]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    purposes = {purpose.value: name for name, purpose in PURPOSES.items()}
    kinds = {kind.value: name for name, kind in KINDS.items()}
    for message in messages:
        granted, issued = message.authorization, message.issuance
        for block in message.blocks:
            writer.writerow({
                "instruction_id": message.instruction_id, "activity_id": message.activity_id,
                "host_party": message.host_party, "vintage": message.vintage,
                "serial_first": block.serial_first, "serial_last": block.serial_last,
                "authorization_id": granted.authorization_id,
                "authorizing_party": granted.authorizing_party,
                "purpose": purposes.get(granted.purpose, ""),
                "authorization_kind": kinds.get(granted.kind, ""),
                "cooperative_approach": granted.cooperative_approach,
                "vintage_first": granted.vintage_first or "",
                "vintage_last": granted.vintage_last or "",
                "acquiring_registry": message.acquiring_registry,
                "acquiring_account": message.acquiring_account,
                "issuance_id": issued.issuance_id,
                "issued_first": issued.issued.serial_first,
                "issued_last": issued.issued.serial_last,
                **_cells(issued, "share_of_proceeds"), **_cells(issued, "omge"),
            })  # fmt: skip
    return out.getvalue()
