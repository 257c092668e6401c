"""What the international registry took in from one sending registry by first transfer (the
mechanism registry's leg), and what it still holds of that registry's serials."""

from __future__ import annotations

from sqlalchemy import Connection

from article6 import holdings
from article6.blocks import serial_range
from article6.identifiers import SERIAL_MAX
from article6.model import Held, LedgerBlock, Status, TransactionType, UnitBlock
from article6.node import store
from article6.v1 import transaction_pb2
from article6.wire import transaction_spec

Intake = tuple[list[tuple[str, str, list[UnitBlock]]], list[LedgerBlock]]


def intake(connection: Connection, registry_id: str, source: str) -> Intake:
    """Completed, applied first transfers from ``source`` (transaction id, account, blocks as
    they arrived), and this registry's holdings of serials originating in ``source``."""
    taken_in = []
    for local in store.list_transactions(connection):
        if local.role != "acquirer" or local.status is not Status.COMPLETED or not local.applied:
            continue
        message = transaction_pb2.Transaction.FromString(local.body)
        if message.transferring_registry != source or message.type != (
            TransactionType.FIRST_TRANSFER.value
        ):
            continue
        spec = transaction_spec(message)
        change = holdings.completion(spec)
        arrived = [
            b.with_attributes(change(Held(spec.source, b.attributes)).unit) for b in spec.blocks
        ]
        taken_in.append((spec.transaction_id, spec.acquiring_account, arrived))
    everything = [serial_range(0, SERIAL_MAX)]
    held = store.neighbourhood(connection, registry_id, source, everything).blocks
    return taken_in, sorted(held, key=lambda b: b.serial_first)
