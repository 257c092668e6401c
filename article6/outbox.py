"""The outbox, one table shape and one set of statements for the hub and every registry alike.

A message is sealed once, when the change that sends it is decided, and written to the outbox
in that change's unit of work, so it exists exactly when the change does and every retry sends
the identical bytes under the same message id. The pump (``article6.pump``) claims due
messages for a short lease, delivers them and records each outcome; what it writes itself
while it runs goes to it at commit, already claimed (``HandOff``), so it leaves at once
instead of waiting for the next claim.

States: ``pending`` (due at ``next_attempt_at`` unless claimed until later), ``delivered``
(a signed receipt verified), ``dead`` (the retry policy gave up; an operator may put it back)
and ``obsolete`` (no longer needs to arrive). Times are aware UTC (``UtcDateTime``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)

from article6.direct import Direct
from article6.envelope import seal_new
from article6.keys import SigningKey
from article6.sql import UtcDateTime
from article6.unit import Later, Unit


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("recipient", String(16), nullable=False),
        Column("message_id", String(36), nullable=False, unique=True),
        Column("payload_type", String(80), nullable=False),
        Column("transaction_id", String(40), nullable=True, index=True),
        Column("envelope", LargeBinary, nullable=False),
        Column("state", String(12), nullable=False),  # pending, delivered, dead, obsolete
        Column("attempts", Integer, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("next_attempt_at", UtcDateTime(), nullable=False),
        Column("claimed_until", UtcDateTime(), nullable=True),
        Column("last_error", Text, nullable=False),
        Column("delivered_at", UtcDateTime(), nullable=True),
        # The pump looks for due messages every poll interval: without this it would read
        # every message ever sent each time, and an idle process's CPU would grow with its
        # history.
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
    )


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    recipient: str
    message_id: str
    payload_type: str
    transaction_id: str | None
    envelope: bytes
    attempts: int
    state: str = "pending"
    created_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str = ""


def message_of(row: Any) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        recipient=row.recipient,
        message_id=row.message_id,
        payload_type=row.payload_type,
        transaction_id=row.transaction_id,
        envelope=row.envelope,
        attempts=row.attempts,
        state=row.state,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
    )


class HandOff:
    """Where the messages a process writes go once committed: to its pump while it runs
    (``start``: each is then written already claimed by the process for ``lease`` and handed
    over at commit, so it leaves at once instead of waiting for the next claim of the
    outbox), nowhere otherwise (it waits for a claim)."""

    def __init__(self) -> None:
        # One attribute, read by the writer thread and set by the event loop's.
        self._taker: tuple[Callable[[OutboxMessage], None], timedelta] | None = None

    def start(self, take: Callable[[OutboxMessage], None], lease: timedelta) -> None:
        self._taker = (take, lease)

    def stop(self) -> None:
        """From now on a message waits for a claim."""
        self._taker = None

    def claimed_until(self, now: datetime) -> datetime | None:
        """Until when a message written now is claimed by this process (None: not claimed)."""
        taker = self._taker
        return None if taker is None else now + taker[1]

    def give(self, message: OutboxMessage) -> None:
        taker = self._taker
        if taker is not None:
            taker[0](message)


@dataclass(frozen=True)
class Outbox:
    """A process's outbox: its table, and the hand-off to its pump."""

    table: Table
    hand_off: HandOff = field(default_factory=HandOff)

    def send(
        self,
        unit: Unit,
        message: Message,
        *,
        sender: str,
        recipient: str,
        key: SigningKey,
        transaction_id: str | None,
        at: datetime,
    ) -> None:
        """Stamp ``message`` with a new header from ``sender`` to ``recipient``, sign it with
        ``key`` and queue it in ``unit``: sealed once, so every retry sends these bytes."""
        sealed = seal_new(message, sender, recipient, key, at)
        message_id: str = getattr(message, "header").message_id  # noqa: B009 (any payload's)
        queued = OutboxMessage(
            id=0, recipient=recipient, message_id=message_id,
            payload_type=sealed.payload_type, transaction_id=transaction_id,
            envelope=sealed.SerializeToString(), attempts=0, created_at=at, next_attempt_at=at,
        )  # fmt: skip
        claimed_until = self.hand_off.claimed_until(datetime.now(UTC))
        row = {
            "recipient": queued.recipient, "message_id": queued.message_id,
            "payload_type": queued.payload_type, "transaction_id": transaction_id,
            "envelope": queued.envelope, "state": "pending", "attempts": 0, "created_at": at,
            "next_attempt_at": at, "claimed_until": claimed_until, "last_error": "",
        }  # fmt: skip
        written = unit.insert(_insert(self.table), row)
        if claimed_until is not None:  # handed to the process's pump once committed
            unit.after_commit(lambda: self.hand_off.give(replace(queued, id=_id(written))))


def claim(
    connection: Connection,
    outbox: Table,
    now: datetime,
    limit: int,
    lease: timedelta,
    excluded: Sequence[str] = (),
) -> list[OutboxMessage]:
    """Claim due messages for ``lease``, except to the ``excluded`` recipients; another
    process sharing the database skips rows already claimed."""
    due = and_(
        outbox.c.state == "pending",
        outbox.c.next_attempt_at <= now,
        or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now),
    )
    if excluded:
        due = and_(due, outbox.c.recipient.not_in(list(excluded)))
    rows = connection.execute(
        select(outbox)
        .where(due)
        .order_by(outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if rows:
        connection.execute(
            update(outbox)
            .where(outbox.c.id.in_([row.id for row in rows]))
            .values(claimed_until=now + lease)
        )
    return [message_of(row) for row in rows]


def release_claims(connection: Connection, outbox: Table, ids: Sequence[int] | None = None) -> int:
    """Release the claims on these messages (its own), or every claim: for a process that
    knows no other one shares its database."""
    pending = and_(outbox.c.state == "pending", outbox.c.claimed_until.is_not(None))
    if ids is not None:
        pending = and_(pending, outbox.c.id.in_(ids))
    return int(
        connection.execute(update(outbox).where(pending).values(claimed_until=None)).rowcount
    )


def delivered(connection: Connection, outbox: Table, row_ids: Sequence[int], at: datetime) -> None:
    """Mark these messages delivered: one statement for all (one round trip on PostgreSQL,
    where the driver pipelines it)."""
    _by_id(outbox).run(
        connection,
        [{"outbox_id": row_id, "state": "delivered", "delivered_at": at, "claimed_until": None,
          "last_error": ""} for row_id in row_ids],
    )  # fmt: skip


def failed(
    connection: Connection,
    outbox: Table,
    message: OutboxMessage,
    error: str,
    retry_at: datetime | None,
    envelope: bytes | None = None,
) -> None:
    """Record a failed attempt: retry at ``retry_at`` (with ``envelope``, re-stamped, if
    given), or a dead letter when it is None."""
    values: dict[str, Any] = {
        "attempts": message.attempts + 1,
        "last_error": error[:500],
        "claimed_until": None,
        "state": "pending" if retry_at is not None else "dead",
    }
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    if envelope is not None:
        values["envelope"] = envelope
    connection.execute(
        update(outbox).where(outbox.c.id == message.id, outbox.c.state == "pending").values(values)
    )


def _id(written: Later) -> int:
    assert written.id is not None, "a unit writes its rows before it commits"
    return written.id


@cache
def _insert(outbox: Table) -> Direct:
    return Direct(insert(outbox))


@cache
def _by_id(outbox: Table) -> Direct:
    return Direct(update(outbox).where(outbox.c.id == bindparam("outbox_id")))
