"""The adapter's own records, beside the registry books of ``article6.node.store``:
instructions with their outcomes, the issuance records seen, and the serials being or already
forwarded (which no later instruction may forward again).

Serials are stored shifted into signed BIGINT as ``article6.block_table`` does, and found with
its O(log n + k) overlap lookups: checking an instruction costs what its ranges cost, never
what the adapter has forwarded before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    or_,
    select,
    update,
)

from article6.block_table import from_db, overlapping_rows, to_db
from article6.blocks import Block, SerialRange
from article6.codes import Code
from article6.node import store
from article6.sql import UtcDateTime
from mechanism_registry_adapter.instructions import InstructionState

metadata = MetaData()

instructions = Table(
    "instructions",
    metadata,
    Column("instruction_id", String(64), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),  # the FirstTransferInstruction as received
    Column("state", Integer, nullable=False),
    Column("results", Text, nullable=False),
    Column("acquiring_registry", String(16), nullable=False),
    Column("issuance_transaction_id", String(40), nullable=True, index=True),
    Column("transfer_transaction_id", String(40), nullable=True, index=True),
    Column("sequence", Integer, nullable=False, unique=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

issuances = Table(
    "issuances",
    metadata,
    Column("issuance_id", String(64), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("space", String(16), nullable=False),
    Column("serial_first", BigInteger, nullable=False),
    Column("serial_last", BigInteger, nullable=False),
    Index("ix_issuances_space_first", "space", "serial_first", unique=True),
)

forwarded = Table(
    "forwarded",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instruction_id", String(64), nullable=False, index=True),
    Column("space", String(16), nullable=False),
    Column("serial_first", BigInteger, nullable=False),
    Column("serial_last", BigInteger, nullable=False),
    Index("ix_forwarded_space_first", "space", "serial_first", unique=True),
)


@dataclass(frozen=True)
class Record:
    instruction_id: str
    digest: str
    body: bytes
    state: InstructionState
    results: list[tuple[int, str]]
    acquiring_registry: str
    issuance_transaction_id: str | None
    transfer_transaction_id: str | None
    sequence: int
    updated_at: datetime


def _record(row: Any) -> Record:
    return Record(
        row.instruction_id, row.digest, row.body, InstructionState(row.state),
        [(code, detail) for code, detail in json.loads(row.results)], row.acquiring_registry,
        row.issuance_transaction_id, row.transfer_transaction_id, row.sequence, row.updated_at,
    )  # fmt: skip


def get(connection: Connection, instruction_id: str) -> Record | None:
    row = connection.execute(
        select(instructions).where(instructions.c.instruction_id == instruction_id)
    ).first()
    return None if row is None else _record(row)


def by_transaction(connection: Connection, transaction_id: str) -> Record | None:
    row = connection.execute(
        select(instructions).where(
            or_(
                instructions.c.issuance_transaction_id == transaction_id,
                instructions.c.transfer_transaction_id == transaction_id,
            )
        )
    ).first()
    return None if row is None else _record(row)


def changed_after(connection: Connection, sequence: int, limit: int) -> list[Record]:
    rows = connection.execute(
        select(instructions)
        .where(instructions.c.sequence > sequence)
        .order_by(instructions.c.sequence)
        .limit(limit)
    )
    return [_record(row) for row in rows]


def in_state(connection: Connection, state: InstructionState) -> list[Record]:
    rows = connection.execute(
        select(instructions).where(instructions.c.state == state.value).order_by("sequence")
    )
    return [_record(row) for row in rows]


def counts(connection: Connection) -> dict[InstructionState, int]:
    rows = connection.execute(select(instructions.c.state))
    found: dict[InstructionState, int] = {}
    for row in rows:
        state = InstructionState(row.state)
        found[state] = found.get(state, 0) + 1
    return found


def insert_instruction(
    connection: Connection,
    instruction_id: str,
    digest: str,
    body: bytes,
    acquiring_registry: str,
    state: InstructionState,
    results: Sequence[tuple[Code, str]] = (),
) -> None:
    now = datetime.now(UTC)
    connection.execute(
        insert(instructions).values(
            instruction_id=instruction_id, digest=digest, body=body, state=state.value,
            results=_encode(results), acquiring_registry=acquiring_registry,
            sequence=store.next_number(connection, "outcome"), received_at=now, updated_at=now,
        )
    )  # fmt: skip


def update_instruction(
    connection: Connection,
    instruction_id: str,
    state: InstructionState,
    results: Sequence[tuple[Code | int, str]] = (),
    **transactions: str,
) -> None:
    """A new state: the outcome moves to the end of the feed."""
    current = get(connection, instruction_id)
    assert current is not None, instruction_id
    assert not current.state.final, current
    connection.execute(
        update(instructions)
        .where(instructions.c.instruction_id == instruction_id)
        .values(
            state=state.value, results=_encode(results), updated_at=datetime.now(UTC),
            sequence=store.next_number(connection, "outcome"), **transactions,
        )
    )  # fmt: skip


def restart_instruction(connection: Connection, instruction_id: str) -> None:
    """A failed instruction starts again from its first step (``retry-failed``)."""
    current = get(connection, instruction_id)
    assert current is not None, instruction_id
    assert current.state is InstructionState.FAILED, current
    connection.execute(
        update(instructions)
        .where(instructions.c.instruction_id == instruction_id)
        .values(
            state=InstructionState.ISSUING.value, results=_encode(()),
            issuance_transaction_id=None, transfer_transaction_id=None,
            updated_at=datetime.now(UTC), sequence=store.next_number(connection, "outcome"),
        )
    )  # fmt: skip


def failed(connection: Connection) -> list[str]:
    """The ids of the failed instructions, oldest first."""
    rows = connection.execute(
        select(instructions.c.instruction_id)
        .where(instructions.c.state == InstructionState.FAILED.value)
        .order_by(instructions.c.sequence)
    )
    return [row.instruction_id for row in rows]


def _encode(results: Sequence[tuple[Code | int, str]]) -> str:
    return json.dumps([[int(code), detail] for code, detail in results])


# --- issuances and forwarded serials --------------------------------------------------------


def issuance_digest(connection: Connection, issuance_id: str) -> str | None:
    row = connection.execute(
        select(issuances.c.digest).where(issuances.c.issuance_id == issuance_id)
    ).first()
    return None if row is None else str(row.digest)


def overlapping_issuances(connection: Connection, space: str, issued: SerialRange) -> list[str]:
    rows = overlapping_rows(connection, issuances, space, issued.serial_first, issued.serial_last)
    return [row.issuance_id for row in rows]


def add_issuance(
    connection: Connection, issuance_id: str, digest: str, space: str, issued: SerialRange
) -> None:
    connection.execute(
        insert(issuances).values(
            issuance_id=issuance_id, digest=digest, space=space,
            serial_first=to_db(issued.serial_first), serial_last=to_db(issued.serial_last),
        )
    )  # fmt: skip


def forwarding(
    connection: Connection, space: str, ranges: Sequence[SerialRange]
) -> list[Block[str]]:
    """Ranges being or already forwarded that overlap ``ranges``, tagged with their
    instruction."""
    found = []
    for wanted in ranges:
        for row in overlapping_rows(
            connection, forwarded, space, wanted.serial_first, wanted.serial_last
        ):
            found.append(
                Block(from_db(row.serial_first), from_db(row.serial_last), row.instruction_id)
            )
    return found


def reserve(
    connection: Connection, instruction_id: str, space: str, ranges: Sequence[SerialRange]
) -> None:
    connection.execute(
        insert(forwarded),
        [
            {"instruction_id": instruction_id, "space": space,
             "serial_first": to_db(r.serial_first), "serial_last": to_db(r.serial_last)}
            for r in ranges
        ],
    )  # fmt: skip


def release(connection: Connection, instruction_id: str) -> None:
    """A failed instruction's serials may be instructed again."""
    connection.execute(delete(forwarded).where(forwarded.c.instruction_id == instruction_id))
