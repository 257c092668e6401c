"""Messages from the hub: sealed once, written to the outbox in the caller's SQL transaction.

Sealing at write time means every retry sends the identical bytes under the same message id.
While a process's delivery loop runs, each message it writes is handed to that loop as soon
as its transaction commits (``HandOff``); the outbox row, claimed by that process meanwhile,
is what makes it survive a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from google.protobuf.message import Message

from article6.envelope import seal
from article6.headers import new_header
from article6.keys import SigningKey
from article6.unit import Unit
from article6.v1 import header_pb2
from gateway.storage.records import OutboxMessage, add_outbox


class HandOff:
    """Where the messages a process writes go once committed: to its delivery loop while it
    runs (``start``: each is then written already claimed by the process for ``lease`` and
    handed over at commit, so it leaves at once instead of waiting for the next claim of the
    outbox), nowhere otherwise (it waits for a claim). The mailer writes through it; the
    process's deliverer starts it while it delivers."""

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


class Mailer:
    def __init__(self, hub_id: str, key: SigningKey) -> None:
        self.hub_id = hub_id
        self.key = key
        self.hand_off = HandOff()

    def seal(self, message: Message, recipient: str, now: datetime) -> bytes:
        """Stamp ``message`` with a new header to ``recipient`` and sign it."""
        header: header_pb2.Header = getattr(message, "header")  # noqa: B009 (field of any payload)
        header.CopyFrom(new_header(self.hub_id, recipient, now))
        return seal(message, [self.key]).SerializeToString()

    def post(
        self,
        unit: Unit,
        recipient: str,
        message: Message,
        transaction_id: str | None,
        now: datetime,
    ) -> None:
        envelope = self.seal(message, recipient, now)
        header: header_pb2.Header = getattr(message, "header")  # noqa: B009
        claimed_until = self.hand_off.claimed_until(datetime.now(UTC))
        queued = add_outbox(
            unit.connection,
            recipient=recipient,
            message_id=header.message_id,
            payload_type=message.DESCRIPTOR.full_name,
            transaction_id=transaction_id,
            envelope=envelope,
            at=now,
            claimed_until=claimed_until,
        )
        if claimed_until is not None:
            unit.after_commit(partial(self.hand_off.give, queued))
