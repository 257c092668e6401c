"""What the hub's messages read before they change anything, read once for a whole batch.

Asked message by message, a proposal reads whether its id was proposed before, whether either
of its registries is held by a reconciliation run (7002), and whether its serials are frozen
by an open discrepancy: three statements each, where a batch of them needs three in all. A
decision reads its transaction: one statement each, or one for a batch of decisions.

``Reads`` answers those questions from what it read before the batch's first message was
applied, so it must not answer anything an earlier message of the same batch changed:

- a transaction named by more than one message of the batch (a proposal, a notice, a
  decision) is read from the database each time, so the second sees what the first did;
- runs start and end only by the reconciler and operators, never by a message;
- serials are frozen only by comparing a leg confirmation: a batch that holds one asks the
  database for each proposal's serials, as a lone proposal would.

It is read each time the writer runs the batch's change (again after a lost unique-key race),
and before any message is applied: when a refusal has the batch taken again, message by
message, after its first pass was undone, what it read is still the state before the batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from article6.blocks import Block
from gateway.storage.reconciliations import any_open_discrepancy, frozen, holding_registries
from gateway.storage.records import TransactionRecord, get_transaction, get_transactions


@dataclass(frozen=True)
class Reads:
    connection: Connection
    records: Mapping[str, TransactionRecord]  # the recorded ones of ``ahead``
    ahead: frozenset[str]  # transaction ids read ahead, recorded or not
    holding: frozenset[str] | None  # registries held by a reconciliation run (proposals)
    any_frozen: bool  # False: no serial is frozen, no proposal need ask about its own

    @classmethod
    def of(
        cls,
        connection: Connection,
        named: Sequence[str],
        proposing: Sequence[str] = (),
        confirmations: bool = False,
    ) -> Reads:
        """Read ahead for a batch naming the transactions ``named`` (one entry a message),
        whose proposals name the registries ``proposing`` (none: it has no proposals), with or
        without leg ``confirmations``: one statement for the transactions, and two more when
        it has proposals."""
        counts = Counter(named)
        ahead = frozenset(i for i, n in counts.items() if n == 1)
        records = get_transactions(connection, sorted(ahead)) if ahead else {}
        if not proposing:
            return cls(connection, records, ahead, None, True)
        holding = holding_registries(connection, proposing)
        any_frozen = confirmations or any_open_discrepancy(connection)
        return cls(connection, records, ahead, holding, any_frozen)

    @classmethod
    def alone(cls, connection: Connection) -> Reads:
        """Nothing read ahead: a message applied on its own asks the database each time."""
        return cls(connection, {}, frozenset(), None, True)

    def record(self, transaction_id: str) -> TransactionRecord | None:
        if transaction_id in self.ahead:
            return self.records.get(transaction_id)
        return get_transaction(self.connection, transaction_id)

    def reconciling(self, registries: Sequence[str]) -> str | None:
        """The first of ``registries`` (named by a proposal of the batch) whose run holds its
        proposals, if any."""
        assert self.holding is not None, "read ahead for proposals only"
        return next((registry for registry in registries if registry in self.holding), None)

    def frozen(self, space: str, ranges: Sequence[Block[Any]]) -> list[int]:
        """The open discrepancies sharing a serial with ``ranges`` of ``space``."""
        return frozen(self.connection, space, ranges) if self.any_frozen else []
