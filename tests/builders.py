"""Building wire messages and a hub on a real database for tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import select

from article6.identifiers import format_account_id
from article6.keys import SigningKey
from article6.model import Status
from article6.v1 import transaction_pb2, units_pb2
from article6.wire import authorization_spec
from gateway.checks import Peer
from gateway.lifecycle import Lifecycle, Outcome
from gateway.mailer import Mailer
from gateway.storage.database import Database
from gateway.storage.records import get_transaction, record_authorization
from gateway.storage.schema import ledger_blocks, locks, outbox

GHA_ACCOUNT = format_account_id("GHA01", 1001)
GHA_OTHER = format_account_id("GHA01", 1002)
CHE_ACCOUNT = format_account_id("CHE01", 1001)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# The standing authorization the tests' ITMOs are issued under: for OIMP its first transfer
# is the issuance, so GHA01 may issue ITMOs under it (and, for NDC too, use them towards one).
AUTHORIZATION = transaction_pb2.Authorization(
    authorization_id="GHA-2024-1", authorizing_party="GHA", cooperative_approach="CA0001",
    purpose=units_pb2.PURPOSE_NDC_AND_OIMP, vintage_first=2021, vintage_last=2030,
    first_transfer_definition=transaction_pb2.FIRST_TRANSFER_TRIGGER_ISSUANCE, version=1,
)  # fmt: skip
FIRST_TRANSFER_AT_ISSUANCE = transaction_pb2.FirstTransfer(
    first_transferring_party="GHA", trigger=transaction_pb2.FIRST_TRANSFER_TRIGGER_ISSUANCE
)


def block(
    first: int,
    last: int,
    space: str = "GHA01",
    cooperative_approach: str = "CA0001",
    **changes: Any,
) -> units_pb2.UnitBlock:
    fields: dict[str, Any] = {
        "serial_first": first,
        "serial_last": last,
        "originating_registry": space,
        "vintage": 2024,
        "cooperative_approach": cooperative_approach,
        "first_transferring_party": "GHA",
        "authorization_id": AUTHORIZATION.authorization_id,
        "purpose": units_pb2.PURPOSE_NDC_AND_OIMP,
        "unit_kind": units_pb2.UNIT_KIND_ITMO,
        "state": units_pb2.UNIT_STATE_HELD,
    }
    fields.update(changes)
    return units_pb2.UnitBlock(**fields)


def transaction(
    transaction_id: str,
    kind: int,
    blocks: list[units_pb2.UnitBlock],
    *,
    sender: str = "GHA01",
    source: str = GHA_ACCOUNT,
    acquirer: str | None = None,
    target: str = "",
    quantity: int | None = None,
    **changes: Any,
) -> transaction_pb2.Transaction:
    message = transaction_pb2.Transaction(
        transaction_id=transaction_id,
        type=kind,  # type: ignore[arg-type]
        transferring_registry=sender,
        transferring_account=source,
        acquiring_registry=acquirer if acquirer is not None else sender,
        acquiring_account=target,
        blocks=blocks,
        quantity=quantity
        if quantity is not None
        else sum(b.serial_last - b.serial_first + 1 for b in blocks),
    )
    for name, value in changes.items():
        if isinstance(value, Message):  # a sub-message: use, authorization, first transfer
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def grant_standing_authorization(database: Database) -> None:
    """Record ``AUTHORIZATION`` at a hub, as GHA01's transaction GHA01-0 would."""
    grant = authorization_spec(AUTHORIZATION)
    body = AUTHORIZATION.SerializeToString(deterministic=True)
    database.write_now(lambda unit: record_authorization(unit, grant, body, "GHA01", "GHA01-0", T0))


def issuance(
    transaction_id: str, first: int, last: int, **changes: Any
) -> transaction_pb2.Transaction:
    """ITMOs issued under the standing authorization, the issuance being their first transfer."""
    return transaction(
        transaction_id,
        transaction_pb2.TRANSACTION_TYPE_ISSUANCE,
        [block(first, last)],
        source="",
        target=GHA_ACCOUNT,
        **{"first_transfer": FIRST_TRANSFER_AT_ISSUANCE, **changes},
    )


def external(
    transaction_id: str, first: int, last: int, **changes: Any
) -> transaction_pb2.Transaction:
    return transaction(
        transaction_id,
        transaction_pb2.TRANSACTION_TYPE_EXTERNAL_TRANSFER,
        [block(first, last)],
        acquirer="CHE01",
        target=CHE_ACCOUNT,
        **changes,
    )


@dataclass
class HubHarness:
    """The hub's lifecycle on a real database, without the network."""

    database: Database
    lifecycle: Lifecycle
    peers: dict[str, Peer] = field(
        default_factory=lambda: {
            "GHA01": Peer("GHA01", frozenset({"CA0001"}), False, party="GHA"),
            "CHE01": Peer("CHE01", frozenset({"CA0001"}), False, party="CHE"),
            "SUS01": Peer("SUS01", frozenset(), True, party="SUS"),
        }
    )
    now: datetime = T0

    @classmethod
    def create(cls, url: str, key: SigningKey | None = None) -> HubHarness:
        key = key or SigningKey.generate()
        database = Database(url, signer=key)
        database.migrate()
        lifecycle = Lifecycle(Mailer("HUB", key), timedelta(seconds=60))
        grant_standing_authorization(database)
        return cls(database, lifecycle)

    def propose(self, message: transaction_pb2.Transaction, sender: str = "GHA01") -> Outcome:
        return self.database.write_now(
            lambda unit: self.lifecycle.propose(unit, sender, message, self.peers, self.now)
        )

    def decide(self, transaction_id: str, decision: Status) -> Outcome:
        return self.database.write_now(
            lambda unit: self.lifecycle.decide(unit, transaction_id, decision, [], self.now)
        )

    def status(self, transaction_id: str) -> Status | None:
        record = self.database.read_now(lambda c: get_transaction(c, transaction_id))
        return None if record is None else record.status

    def state(self) -> dict[str, list[tuple[Any, ...]]]:
        """Everything a refused proposal must leave as it was."""

        def read(connection: Any) -> dict[str, list[tuple[Any, ...]]]:
            return {
                name: [tuple(row) for row in connection.execute(select(table).order_by(table.c.id))]
                for name, table in (("ledger", ledger_blocks), ("locks", locks), ("outbox", outbox))
            }

        return self.database.read_now(read)

    def outbox_to(self, recipient: str) -> list[str]:
        rows = self.database.read_now(
            lambda c: c.execute(
                select(outbox.c.payload_type).where(outbox.c.recipient == recipient)
            ).all()
        )
        return [row.payload_type for row in rows]

    def close(self) -> None:
        self.database.close()
