"""Transactions and their history, the idempotency inbox, the outbox, registry status."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    String,
    Table,
    and_,
    any_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from article6.codes import Code
from article6.direct import Direct
from article6.model import AuthorizationSpec, FirstTransferTrigger, Purpose, Status
from article6.outbox import OutboxMessage, message_of
from article6.unit import Unit, WriteConflict
from gateway.storage import audit
from gateway.storage.schema import authorization_versions as authorization_versions_table
from gateway.storage.schema import (
    authorizations,
    outbox,
    registry_status,
    transaction_history,
    transactions,
)

Results = Sequence[tuple[Code, str]]


def encode_results(results: Results) -> str:
    return json.dumps([[code.value, detail] for code, detail in results])


def decode_results(text: str) -> list[tuple[Code, str]]:
    return [(Code(code), detail) for code, detail in json.loads(text)]


# --- transactions --------------------------------------------------------------------------


@dataclass(frozen=True)
class TransactionRecord:
    transaction_id: str
    type: int
    proposer: str
    transferring_registry: str
    acquiring_registry: str
    quantity: int
    status: Status
    results: list[tuple[Code, str]]
    body: bytes
    proposed_at: datetime
    status_at: datetime
    respond_by: datetime | None


def _record(row: Any) -> TransactionRecord:
    return TransactionRecord(
        transaction_id=row.transaction_id,
        type=row.type,
        proposer=row.proposer,
        transferring_registry=row.transferring_registry,
        acquiring_registry=row.acquiring_registry,
        quantity=row.quantity,
        status=Status(row.status),
        results=decode_results(row.results),
        body=row.body,
        proposed_at=row.proposed_at,
        status_at=row.status_at,
        respond_by=row.respond_by,
    )


def insert_transaction(
    unit: Unit,
    record: TransactionRecord,
    path: Sequence[Status],
    write: Callable[[dict[str, Any]], None],
) -> None:
    """Record a new transaction in ``record.status``, with the history of every status on
    ``path`` it went through on the way within this SQL transaction (``record.status`` last).
    ``write``: how its row is written, at once or kept back with a hub batch's writes
    (``gateway.reads.LedgerReads.insert_transaction``)."""
    statuses = [*path, record.status]
    assert len(set(statuses)) == len(statuses), statuses
    write(_row(record))
    for status in statuses:
        results = record.results if status is record.status else ()
        _history(unit, record.transaction_id, status, record.status_at, results)
    unit.record(record.proposer, "transaction.recorded", record.transaction_id,
        type=record.type,
        transferring=record.transferring_registry, acquiring=record.acquiring_registry,
        quantity=record.quantity, statuses=[status.value for status in statuses],
        codes=[code.value for code, _ in record.results],
        body_sha256=hashlib.sha256(record.body).hexdigest(),
    )  # fmt: skip


def _row(record: TransactionRecord) -> dict[str, Any]:
    # Values as parameters, not .values(): the statement is then compiled once and reused.
    return {
        "transaction_id": record.transaction_id,
        "type": record.type,
        "proposer": record.proposer,
        "transferring_registry": record.transferring_registry,
        "acquiring_registry": record.acquiring_registry,
        "quantity": record.quantity,
        "status": record.status.value,
        "results": encode_results(record.results),
        "body": record.body,
        "proposed_at": record.proposed_at,
        "status_at": record.status_at,
        "respond_by": record.respond_by,
    }


def _history(
    unit: Unit, transaction_id: str, status: Status, at: datetime, results: Results
) -> None:
    """A history row: written with the group's others just before the commit (Unit.insert),
    as nothing reads a transaction's history in the SQL transaction that writes it."""
    unit.insert(
        _insert(transaction_history),
        {
            "transaction_id": transaction_id,
            "status": status.value,
            "at": at,
            "results": encode_results(results),
        },
    )


def storable(key: str, length: int) -> bool:
    """Whether a peer's string can be a key in a column of ``length``: a longer one, or one
    with a NUL (which PostgreSQL refuses in text), cannot have been stored, so is not looked up."""
    return len(key) <= length and "\x00" not in key


def get_transaction(connection: Connection, transaction_id: str) -> TransactionRecord | None:
    if not storable(transaction_id, 40):
        return None
    rows = _by_id().rows(connection, {"id": transaction_id})
    return _record(rows[0]) if rows else None


def get_transactions(
    connection: Connection, transaction_ids: Sequence[str]
) -> dict[str, TransactionRecord]:
    """The recorded ones of these transactions, by id, in one statement."""
    wanted = sorted({i for i in transaction_ids if storable(i, 40)})
    if len(wanted) < 2:  # none, or one by the prebuilt statement
        found = [_record(row) for i in wanted for row in _by_id().rows(connection, {"id": i})]
        return {record.transaction_id: record for record in found}
    postgresql = connection.dialect.name == "postgresql"
    ids = wanted if postgresql else json.dumps(wanted)  # an array, or SQLite's JSON text
    rows = _by_ids(postgresql).rows(connection, {"ids": ids})
    return {row.transaction_id: _record(row) for row in rows}


@cache
def _by_ids(postgresql: bool) -> Direct:
    """Built once, as ``_by_id``: the ids are one parameter (an array on PostgreSQL, planned
    for its values each time, a JSON list SQLite reads with ``json_each``), so one statement
    serves any number of them."""
    column = transactions.c.transaction_id
    if postgresql:
        ids = bindparam("ids", type_=ARRAY(String))
        return Direct(select(transactions).where(column == any_(ids)), replan=True)
    listed = func.json_each(bindparam("ids", type_=String)).table_valued("value")
    return Direct(select(transactions).where(column.in_(select(listed.c.value))))


@cache
def _by_id() -> Direct:
    """Built once: on the hot paths, constructing a statement costs more than running it, and
    SQLAlchemy's execution more than the database's (article6.direct)."""
    return Direct(select(transactions).where(transactions.c.transaction_id == bindparam("id")))


@cache
def _status_change() -> Direct:
    """The new status, time and results come as parameters named after their columns."""
    return Direct(
        update(transactions).where(
            transactions.c.transaction_id == bindparam("id"),
            transactions.c.status == bindparam("was"),
        )
    )


@cache
def _insert(table: Table) -> Direct:
    return Direct(insert(table))


def set_status(
    unit: Unit,
    record: TransactionRecord,
    status: Status,
    at: datetime,
    results: Results = (),
    path: Sequence[Status] = (),
    *,
    write: Callable[[dict[str, Any]], None],
) -> TransactionRecord:
    """Move a transaction to ``status`` through the statuses on ``path`` (ACCEPTED on the way
    to COMPLETED, say): one UPDATE, and a history row and an audit entry for each step. A
    final status never changes (asserted). ``write``: how the UPDATE is made, at once or kept
    back with a hub batch's writes (``gateway.reads.LedgerReads.change_status``, which makes
    it with ``change_statuses``)."""
    assert not record.status.final, f"{record.transaction_id} is final ({record.status.name})"
    write({"id": record.transaction_id, "was": record.status.value, "status": status.value,
           "status_at": at, "results": encode_results(results)})  # fmt: skip
    previous = record.status
    for step in [*path, status]:
        _history(unit, record.transaction_id, step, at, results if step is status else ())
        unit.record(audit.HUB, "transaction.status", record.transaction_id,
            previous=previous.value, status=step.value,
            codes=[code.value for code, _ in results] if step is status else [],
        )  # fmt: skip
        previous = step
    return TransactionRecord(
        **{**record.__dict__, "status": status, "status_at": at, "results": list(results)}
    )


def change_statuses(connection: Connection, changes: Sequence[dict[str, Any]]) -> None:
    """Make ``set_status``'s changes: one statement (pipelined on PostgreSQL). Each changes
    its transaction only if it is still in the status it was read in (``was``); one that is
    not was changed by another hub since, and the change that read it is run again from its
    reads (``WriteConflict``)."""
    changed = _status_change().run(connection, changes)
    if changed != len(changes):
        ids, missed = ", ".join(change["id"] for change in changes[:5]), len(changes) - changed
        raise WriteConflict(f"{missed} of {len(changes)} transactions changed since read ({ids})")


def extend_respond_by(connection: Connection, transaction_id: str, respond_by: datetime) -> None:
    """Give a transaction still awaiting its acquirer until at least ``respond_by``."""
    connection.execute(
        update(transactions)
        .where(
            transactions.c.transaction_id == transaction_id,
            transactions.c.status == Status.CHECKED.value,
            transactions.c.respond_by < respond_by,
        )
        .values(respond_by=respond_by)
    )


def expired_transactions(connection: Connection, now: datetime, limit: int) -> list[str]:
    rows = connection.execute(
        select(transactions.c.transaction_id)
        .where(
            transactions.c.status.in_([Status.CHECKED.value, Status.ACCEPTED.value]),
            transactions.c.respond_by < now,
        )
        .limit(limit)
    )
    return [row.transaction_id for row in rows]


def list_transactions(
    connection: Connection,
    status: int = 0,
    type_: int = 0,
    registry: str = "",
    limit: int = 100,
) -> list[TransactionRecord]:
    query = select(transactions).order_by(transactions.c.proposed_at.desc()).limit(limit)
    if status:
        query = query.where(transactions.c.status == status)
    if type_:
        query = query.where(transactions.c.type == type_)
    if registry:
        query = query.where(
            or_(
                transactions.c.transferring_registry == registry,
                transactions.c.acquiring_registry == registry,
            )
        )
    return [_record(row) for row in connection.execute(query)]


def history(connection: Connection, transaction_id: str) -> list[tuple[Status, datetime, str]]:
    rows = connection.execute(
        select(transaction_history)
        .where(transaction_history.c.transaction_id == transaction_id)
        .order_by(transaction_history.c.id)
    )
    return [(Status(row.status), row.at, row.results) for row in rows]


# --- outbox --------------------------------------------------------------------------------


def obsolete_outbox(unit: Unit, transaction_id: str, payload_type: str) -> None:
    """Stop delivering pending messages of a transaction that no longer need to arrive
    (those queued in this SQL transaction too: its rows are written first)."""
    unit.flush()
    _obsolete().run(
        unit.connection,
        {"transaction": transaction_id, "kind": payload_type, "state": "obsolete",
         "claimed_until": None},
    )  # fmt: skip


@cache
def _obsolete() -> Direct:
    return Direct(
        update(outbox).where(
            outbox.c.transaction_id == bindparam("transaction"),
            outbox.c.payload_type == bindparam("kind"),
            or_(outbox.c.state == "pending", outbox.c.state == "dead"),
        )
    )


def list_outbox(
    connection: Connection, dead_letters: bool, recipient: str = "", limit: int = 100
) -> list[OutboxMessage]:
    query = (
        select(outbox)
        .where(outbox.c.state == ("dead" if dead_letters else "pending"))
        .order_by(outbox.c.id)
        .limit(limit)
    )
    if recipient:
        query = query.where(outbox.c.recipient == recipient)
    return [message_of(row) for row in connection.execute(query)]


def retry_dead_letter(unit: Unit, entry_id: int, now: datetime, by: str) -> OutboxMessage | None:
    changed = unit.connection.execute(
        update(outbox)
        .where(outbox.c.id == entry_id, outbox.c.state == "dead")
        .values(state="pending", attempts=0, created_at=now, next_attempt_at=now,
                claimed_until=None)
    )  # fmt: skip
    if changed.rowcount != 1:
        return None
    row = unit.connection.execute(select(outbox).where(outbox.c.id == entry_id)).one()
    unit.record(by, "outbox.retried", str(entry_id),
                 recipient=row.recipient, message_id=row.message_id)  # fmt: skip
    return message_of(row)


def retry_dead_letters(unit: Unit, registry: str, now: datetime, by: str) -> int:
    """Put every dead letter (to ``registry``, or to any if it is "") back into delivery."""
    dead = outbox.c.state == "dead"
    if registry:
        dead = and_(dead, outbox.c.recipient == registry)
    changed = unit.connection.execute(
        update(outbox)
        .where(dead)
        .values(state="pending", attempts=0, created_at=now, next_attempt_at=now,
                claimed_until=None)
    ).rowcount  # fmt: skip
    if changed:
        unit.record(by, "outbox.retried", registry or "*", count=changed)
    return int(changed)


# --- registry status -----------------------------------------------------------------------


def suspended_overrides(connection: Connection) -> dict[str, bool]:
    rows = connection.execute(select(registry_status.c.registry_id, registry_status.c.suspended))
    return {row.registry_id: row.suspended for row in rows}


def set_suspended(
    unit: Unit, registry_id: str, suspended: bool, reason: str, at: datetime, by: str
) -> None:
    action = "registry.suspended" if suspended else "registry.resumed"
    unit.record(by, action, registry_id, reason=reason)
    values = {"suspended": suspended, "reason": reason, "changed_at": at}
    changed = unit.connection.execute(
        update(registry_status).where(registry_status.c.registry_id == registry_id).values(values)
    )
    if changed.rowcount == 0:
        unit.connection.execute(insert(registry_status).values(registry_id=registry_id, **values))


# --- authorizations ------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizationRecord:
    """An authorization at its current version."""

    grant: AuthorizationSpec
    registry: str
    reserved: int  # first transferred, or in a pending first transfer, across versions


@dataclass(frozen=True)
class AuthorizationVersionRecord:
    """One version as recorded: the wire bytes of its ``article6.v1.Authorization``."""

    authorization_id: str
    version: int
    registry: str
    transaction_id: str
    recorded_at: datetime
    body: bytes


def _authorization_record(row: Any) -> AuthorizationRecord:
    grant = AuthorizationSpec(
        authorization_id=row.authorization_id,
        authorizing_party=row.authorizing_party,
        cooperative_approach=row.cooperative_approach,
        purpose=Purpose(row.purpose),
        quantity_cap=row.quantity_cap,
        vintage_first=row.vintage_first,
        vintage_last=row.vintage_last,
        first_transfer_definition=FirstTransferTrigger(row.first_transfer_definition),
        version=row.version,
        use_year_first=row.use_year_first,
        use_year_last=row.use_year_last,
        revoked=row.revoked,
    )
    return AuthorizationRecord(grant, row.registry, row.reserved)


def get_authorization(connection: Connection, authorization_id: str) -> AuthorizationRecord | None:
    if not storable(authorization_id, 64):
        return None
    row = connection.execute(
        select(authorizations).where(authorizations.c.authorization_id == authorization_id)
    ).first()
    return None if row is None else _authorization_record(row)


def list_authorizations(
    connection: Connection, party: str = "", cooperative_approach: str = ""
) -> list[tuple[AuthorizationRecord, AuthorizationVersionRecord]]:
    """Authorizations, each with its current version as recorded, in one query."""
    versions = authorization_versions_table
    query = (
        select(
            authorizations,
            *(column.label(f"version_{column.name}") for column in versions.columns),
        )
        .join(
            versions,
            and_(
                versions.c.authorization_id == authorizations.c.authorization_id,
                versions.c.version == authorizations.c.version,
            ),
        )
        .order_by(authorizations.c.authorization_id)
    )
    if party:
        query = query.where(authorizations.c.authorizing_party == party)
    if cooperative_approach:
        query = query.where(authorizations.c.cooperative_approach == cooperative_approach)
    return [
        (
            _authorization_record(row),
            AuthorizationVersionRecord(
                **{c.name: getattr(row, f"version_{c.name}") for c in versions.columns}
            ),
        )
        for row in connection.execute(query)
    ]


def authorization_versions(
    connection: Connection, authorization_id: str
) -> list[AuthorizationVersionRecord]:
    """Every version of an authorization, oldest first."""
    if not storable(authorization_id, 64):
        return []
    rows = connection.execute(
        select(authorization_versions_table)
        .where(authorization_versions_table.c.authorization_id == authorization_id)
        .order_by(authorization_versions_table.c.version)
    )
    return [AuthorizationVersionRecord(**row._asdict()) for row in rows]


def _current_terms(grant: AuthorizationSpec) -> dict[str, Any]:
    return {
        "authorizing_party": grant.authorizing_party,
        "cooperative_approach": grant.cooperative_approach,
        "purpose": grant.purpose.value,
        "quantity_cap": grant.quantity_cap,
        "vintage_first": grant.vintage_first,
        "vintage_last": grant.vintage_last,
        "version": grant.version,
        "first_transfer_definition": grant.first_transfer_definition.value,
        "use_year_first": grant.use_year_first,
        "use_year_last": grant.use_year_last,
        "revoked": grant.revoked,
    }


def record_authorization(
    unit: Unit,
    grant: AuthorizationSpec,
    body: bytes,
    registry: str,
    transaction_id: str,
    at: datetime,
) -> None:
    """Record a new authorization (version 1) or a new version of a recorded one: the current
    terms replaced, the version kept beside every earlier one."""
    if grant.version == 1:
        unit.connection.execute(
            insert(authorizations).values(
                authorization_id=grant.authorization_id, registry=registry, reserved=0,
                transaction_id=transaction_id, granted_at=at, **_current_terms(grant),
            )
        )  # fmt: skip
    else:
        changed = unit.connection.execute(
            update(authorizations)
            .where(
                authorizations.c.authorization_id == grant.authorization_id,
                authorizations.c.version == grant.version - 1,
            )
            .values(**_current_terms(grant))
        )
        assert changed.rowcount == 1, f"{grant.authorization_id} changed under us"
    unit.connection.execute(
        insert(authorization_versions_table).values(
            authorization_id=grant.authorization_id, version=grant.version, registry=registry,
            transaction_id=transaction_id, recorded_at=at, body=body,
        )
    )  # fmt: skip
    unit.record(registry, "authorization.recorded", grant.authorization_id,
        version=grant.version, party=grant.authorizing_party,
        cooperative_approach=grant.cooperative_approach, purpose=grant.purpose.value,
        cap=grant.quantity_cap, vintages=[grant.vintage_first, grant.vintage_last],
        first_transfer_definition=grant.first_transfer_definition.value,
        revoked=grant.revoked, transaction_id=transaction_id,
    )  # fmt: skip


def reserve(connection: Connection, authorization_id: str, quantity: int) -> None:
    """Count ``quantity`` (negative to give back) against an authorization's cap."""
    changed = connection.execute(
        update(authorizations)
        .where(authorizations.c.authorization_id == authorization_id)
        .values(reserved=authorizations.c.reserved + quantity)
    )
    assert changed.rowcount == 1, authorization_id


def completed_transactions(
    connection: Connection, until: datetime
) -> Iterator[tuple[bytes, datetime]]:
    """Every transaction completed before ``until`` (its body and when it completed), in the
    order they completed, one at a time (read as they are needed)."""
    query = (
        select(transactions.c.body, transactions.c.status_at)
        .where(transactions.c.status == Status.COMPLETED.value)
        .where(transactions.c.status_at < until)
        .order_by(transactions.c.status_at, transactions.c.transaction_id)
    )
    for row in connection.execute(query):
        yield row.body, row.status_at
