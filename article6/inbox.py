"""The exactly-once inbox, one function for the hub and every registry alike.

The inbox is a protocol rule (docs/PROTOCOL.md section 7): a message is recorded under
(sender, message_id) with the SHA-256 of its payload and the signed response it got, in the
same SQL transaction as its effects; the same bytes again get that response, byte for byte,
and other bytes under the same id are refused with 3001. What differs between the hub and a
registry is only what a message does and how its response is written (``respond``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from article6.codes import Code, Refusal
from article6.direct import Direct
from article6.envelope import Opened
from article6.headers import check_fresh
from article6.sql import UtcDateTime
from article6.unit import SpaceBusy, Unit, WriteConflict

Respond = Callable[[Unit, datetime], bytes]
"""Apply a message's effects at a moment and return its signed response's bytes."""

Taken = tuple[Opened, Respond]
"""A message opened (its signature verified) and what it does, waiting for its unit of work."""

Answer = bytes | Exception
"""A message's signed response, or what it raised (a ``Refusal``, or a fault of ours)."""


def exactly_once(unit: Unit, inbox: Table, opened: Opened, respond: Respond) -> bytes:
    """``opened``'s response: the stored one if this exact message was taken before,
    otherwise ``respond``'s, recorded with the message in the caller's unit of work. Only a
    message not taken before must be fresh (1036): a retry of one taken long ago still finds
    its response. A batch of one: what it raises leaves the unit to the caller to roll back."""
    stored = replayed(unit.connection, inbox, opened)
    if stored is not None:
        return stored
    now = datetime.now(UTC)
    check_fresh(opened.header, now)
    response = respond(unit, now)
    remember(unit.connection, inbox, [_row(opened, response, now)])
    return response


def exactly_once_all(unit: Unit, inbox: Table, batch: Sequence[Taken]) -> list[Answer]:
    """Each message's answer, as ``exactly_once`` would give it were the messages taken one
    after another, in one unit of work: one query finds those taken before (a message id
    repeated within the batch is a replay of its first), one statement records the new ones.

    A message that raises has no effect. The batch runs without a savepoint per message:
    replays, reused ids (3001) and stale messages (1036) are answered before anything is
    done, and if applying a message raises, what the batch did is undone and it runs again
    with a savepoint per message, so a refusal costs its batch a second pass, never a wrong
    effect. A lost unique-key race, a row changed by another hub (``WriteConflict``) or a
    busy serial space (``SpaceBusy``) is raised to the writer, which runs the whole batch
    again (``article6.group_commit``). A batch of one raises what its message raised, and
    the writer rolls its change back.
    """
    if len(batch) == 1:  # what it raises is the caller's to roll back: no savepoint
        return [exactly_once(unit, inbox, *batch[0])]
    stored = _stored(unit.connection, inbox, batch)
    try:
        with unit.savepoint():
            answers, rows = _take_all(unit, batch, stored, careful=False)
    except _Raised:
        answers, rows = _take_all(unit, batch, stored, careful=True)
    remember(unit.connection, inbox, rows)
    return answers


class _Raised(Exception):
    """Applying a message raised during a batch's first pass."""


Key = tuple[str, str]  # (sender, message_id)


def _take_all(
    unit: Unit, batch: Sequence[Taken], stored: dict[Key, tuple[bytes, bytes]], careful: bool
) -> tuple[list[Answer], list[dict[str, Any]]]:
    """Take the messages in order: their answers, and the inbox rows of those applied."""
    taken = dict(stored)  # grows with this batch's own, for an id repeated within it
    answers: list[Answer] = []
    rows: list[dict[str, Any]] = []
    for opened, respond in batch:
        key = (opened.signer, opened.header.message_id)
        now = datetime.now(UTC)
        try:
            known = taken.get(key)
            if known is not None:
                answers.append(_replay(opened, *known))
                continue
            check_fresh(opened.header, now)
        except Refusal as refusal:  # nothing was done for it
            answers.append(refusal)
            continue
        response = _apply(unit, opened, respond, now, careful)
        answers.append(response)
        if isinstance(response, bytes):
            taken[key] = (opened.digest, response)
            rows.append(_row(opened, response, now))
    return answers, rows


def _apply(unit: Unit, opened: Opened, respond: Respond, now: datetime, careful: bool) -> Answer:
    if not careful:
        try:
            return respond(unit, now)
        except (IntegrityError, SpaceBusy, WriteConflict):
            raise
        except Exception as error:
            raise _Raised from error
    try:
        with unit.savepoint():
            return respond(unit, now)
    except (IntegrityError, SpaceBusy, WriteConflict):
        raise
    except Exception as error:  # the message's alone: its savepoint took its effects
        return error


def _replay(opened: Opened, digest: bytes, response: bytes) -> bytes:
    if digest != opened.digest:
        raise Refusal(Code.MESSAGE_ID_REUSED, f"{opened.signer} {opened.header.message_id}")
    return response


def _stored(
    connection: Connection, inbox: Table, batch: Sequence[Taken]
) -> dict[Key, tuple[bytes, bytes]]:
    """The recorded digest and response of each message of the batch taken before: one
    query per sender (a batch has one)."""
    ids: dict[str, list[str]] = {}
    for opened, _ in batch:
        ids.setdefault(opened.signer, []).append(opened.header.message_id)
    found: dict[Key, tuple[bytes, bytes]] = {}
    for sender, message_ids in ids.items():
        rows = connection.execute(_recorded_all(inbox), {"sender": sender, "ids": message_ids})
        for row in rows:
            found[(sender, row.message_id)] = (row.payload_sha256, row.response)
    return found


def _row(opened: Opened, response: bytes, at: datetime) -> dict[str, Any]:
    return {"sender": opened.signer, "message_id": opened.header.message_id,
            "payload_sha256": opened.digest, "response": response, "received_at": at}  # fmt: skip


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


def replayed(connection: Connection, inbox: Table, opened: Opened) -> bytes | None:
    """The stored response if this exact message was recorded; refuse other bytes (3001)."""
    sender, message_id = opened.signer, opened.header.message_id
    rows = _recorded(inbox).rows(connection, {"sender": sender, "id": message_id})
    if not rows:
        return None
    (row,) = rows
    return _replay(opened, row.payload_sha256, row.response)


def remember(connection: Connection, inbox: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Record taken messages with their responses (``_row``), in one statement."""
    _record(inbox).run(connection, rows)


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
def _recorded_all(inbox: Table) -> Select[Any]:
    return select(inbox.c.message_id, inbox.c.payload_sha256, inbox.c.response).where(
        inbox.c.sender == bindparam("sender"),
        inbox.c.message_id.in_(bindparam("ids", expanding=True)),
    )


@cache
def _record(inbox: Table) -> Direct:
    return Direct(insert(inbox))
