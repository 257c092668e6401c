"""Messages from the hub: sealed once, written to the outbox in the caller's unit of work.

Sealing at write time means every retry sends the identical bytes under the same message id.
While the hub's pump runs, each message it writes is handed to the pump as soon as its
transaction commits (``article6.outbox.Outbox``); the outbox row, claimed by this process
meanwhile, is what makes it survive a crash.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from article6.envelope import seal_new
from article6.keys import SigningKey
from article6.outbox import Outbox
from article6.unit import Unit
from gateway.storage.schema import outbox


class Mailer:
    def __init__(self, hub_id: str, key: SigningKey) -> None:
        self.hub_id = hub_id
        self.key = key
        self.outbox = Outbox(outbox)

    def seal(self, message: Message, recipient: str, now: datetime) -> bytes:
        """Stamp ``message`` with a new header to ``recipient`` and sign it."""
        return seal_new(message, self.hub_id, recipient, self.key, now).SerializeToString()

    def post(
        self,
        unit: Unit,
        recipient: str,
        message: Message,
        transaction_id: str | None,
        now: datetime,
    ) -> None:
        self.outbox.send(unit, message, sender=self.hub_id, recipient=recipient, key=self.key,
                         transaction_id=transaction_id, at=now)  # fmt: skip
