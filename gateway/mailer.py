"""Messages from the hub: sealed once, written to the outbox in the caller's SQL transaction.

Sealing at write time means every retry sends the identical bytes under the same message id.
A delivering process has each message sent as soon as its transaction commits (``dispatch``);
the outbox row, claimed by that process meanwhile, is what makes it survive a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from google.protobuf.message import Message
from sqlalchemy import Connection

from article6.envelope import seal
from article6.headers import new_header
from article6.keys import SigningKey
from article6.v1 import header_pb2
from gateway.storage.database import after_commit
from gateway.storage.records import OutboxMessage, add_outbox


class Mailer:
    def __init__(self, hub_id: str, key: SigningKey) -> None:
        self.hub_id = hub_id
        self.key = key
        # Set by a process that delivers (gateway.delivery): each message is then written
        # already claimed by it for ``lease`` and handed to ``dispatch`` once committed, so it
        # leaves at once instead of waiting for the next claim of the outbox.
        self.dispatch: Callable[[OutboxMessage], None] | None = None
        self.lease = timedelta(seconds=0)

    def seal(self, message: Message, recipient: str, now: datetime) -> bytes:
        """Stamp ``message`` with a new header to ``recipient`` and sign it."""
        header: header_pb2.Header = getattr(message, "header")  # noqa: B009 (field of any payload)
        header.CopyFrom(new_header(self.hub_id, recipient, now))
        return seal(message, [self.key]).SerializeToString()

    def post(
        self,
        connection: Connection,
        recipient: str,
        message: Message,
        transaction_id: str | None,
        now: datetime,
    ) -> None:
        envelope = self.seal(message, recipient, now)
        header: header_pb2.Header = getattr(message, "header")  # noqa: B009
        dispatch = self.dispatch
        queued = add_outbox(
            connection,
            recipient=recipient,
            message_id=header.message_id,
            payload_type=message.DESCRIPTOR.full_name,
            transaction_id=transaction_id,
            envelope=envelope,
            at=now,
            claimed_until=None if dispatch is None else datetime.now(UTC) + self.lease,
        )
        if dispatch is not None:
            after_commit(connection, partial(dispatch, queued))
