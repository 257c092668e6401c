"""The exactly-once inbox, one function for the hub and every registry alike.

The inbox is a protocol rule (docs/PROTOCOL.md section 7): a message is recorded under
(sender, message_id) with the SHA-256 of its payload and the signed response it got, in the
same SQL transaction as its effects; the same bytes again get that response, byte for byte,
and other bytes under the same id are refused with 3001. What differs between the hub and a
registry is only what a message does and how its response is written (``respond``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import (
    Column,
    Connection,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
)

from article6.codes import Code, Refusal
from article6.direct import Direct
from article6.envelope import Opened, payload_sha256
from article6.headers import check_fresh
from article6.sql import UtcDateTime
from article6.unit import Unit

Respond = Callable[[Unit, datetime], bytes]
"""Apply a message's effects at a moment and return its signed response's bytes."""


def exactly_once(unit: Unit, inbox: Table, opened: Opened, respond: Respond) -> bytes:
    """``opened``'s response: the stored one if this exact message was taken before,
    otherwise ``respond``'s, recorded with the message in the caller's unit of work. Only a
    message not taken before must be fresh (1036): a retry of one taken long ago still finds
    its response."""
    sender, message_id = opened.signer, opened.header.message_id
    digest = payload_sha256(opened.envelope)
    stored = replayed(unit.connection, inbox, sender, message_id, digest)
    if stored is not None:
        return stored
    now = datetime.now(UTC)
    check_fresh(opened.header, now)
    response = respond(unit, now)
    remember(unit.connection, inbox, sender, message_id, digest, response, now)
    return response


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("sender", String(16), primary_key=True),
        Column("message_id", String(36), primary_key=True),
        Column("payload_sha256", LargeBinary(32), nullable=False),
        Column("response", LargeBinary, nullable=False),  # the signed response Envelope
        Column("received_at", UtcDateTime(), nullable=False),
    )


def replayed(
    connection: Connection, inbox: Table, sender: str, message_id: str, digest: bytes
) -> bytes | None:
    """The stored response if this exact message was recorded; refuse other bytes (3001)."""
    rows = _recorded(inbox).rows(connection, {"sender": sender, "id": message_id})
    if not rows:
        return None
    (row,) = rows
    if row.payload_sha256 != digest:
        raise Refusal(Code.MESSAGE_ID_REUSED, f"{sender} {message_id}")
    response: bytes = row.response
    return response


def remember(
    connection: Connection,
    inbox: Table,
    sender: str,
    message_id: str,
    digest: bytes,
    response: bytes,
    at: datetime,
) -> None:
    _record(inbox).run(
        connection,
        {"sender": sender, "message_id": message_id, "payload_sha256": digest,
         "response": response, "received_at": at},
    )  # fmt: skip


@cache
def _recorded(inbox: Table) -> Direct:
    """Built once per table: on the hot paths, constructing a statement costs more than
    running it."""
    return Direct(
        select(inbox.c.payload_sha256, inbox.c.response).where(
            inbox.c.sender == bindparam("sender"), inbox.c.message_id == bindparam("id")
        )
    )


@cache
def _record(inbox: Table) -> Direct:
    return Direct(insert(inbox))
