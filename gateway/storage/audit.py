"""The audit trail in the hub's database.

Code that changes state notes entries on its unit of work (``article6.unit.Unit.record``).
``seal`` (called by ``Database`` just before the commit, with those entries) takes the
head row's lock, chains the noted entries onto it, inserts them and moves the signed head, so
entries commit with the change they describe or not at all, and the head's lock is held only
for those last statements.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from sqlalchemy import Connection, insert, select, update

from article6.direct import Direct
from article6.keys import KeyDirectory, SigningKey
from article6.unit import AuditNote
from gateway.audit import Entry, Head, Verdict, entry_hash, head_statement, verify
from gateway.storage.schema import audit_head, audit_log

HUB = "hub"  # the actor of what the hub does on its own (time-outs, checks, runs)


def seal(connection: Connection, pending: list[AuditNote], signer: SigningKey | None) -> int:
    """Chain the noted entries onto the head and sign the new head; the number written."""
    if not pending:
        return 0
    (head,) = _head_for_update().rows(connection, {})
    seq, digest, rows = head.seq, head.hash, []
    for at, actor, action, subject, detail in pending:
        seq += 1
        entry = Entry(seq, at, actor[:64], action, subject[:80], detail)
        digest = entry_hash(digest, entry)
        rows.append(
            {"seq": seq, "at": at, "actor": entry.actor, "action": action,
             "subject": entry.subject, "detail": detail_json(detail), "hash": digest}
        )  # fmt: skip
    _insert_entries().run(connection, rows)
    key_id = signer.key_id if signer else ""
    signature = signer.sign(head_statement(seq, digest)) if signer else b""
    _head_change().run(
        connection, {"seq": seq, "hash": digest, "key_id": key_id, "signature": signature}
    )
    return len(rows)


@cache
def _head_for_update() -> Direct:
    """Built once, as every commit seals: constructing costs more than running, and
    SQLAlchemy's execution more than the database's (article6.direct)."""
    return Direct(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
    )


@cache
def _head_change() -> Direct:
    return Direct(update(audit_head).where(audit_head.c.id == 1))


@cache
def _insert_entries() -> Direct:
    return Direct(insert(audit_log))


def detail_json(detail: dict[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"))


def entries(connection: Connection, batch: int = 5000) -> Iterator[tuple[Entry, str]]:
    """Every entry with its stored hash, in sequence order, read in batches."""
    after = -1
    while True:
        rows = connection.execute(
            select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(batch)
        ).all()
        for row in rows:
            yield _entry(row), row.hash
        if len(rows) < batch:
            return
        after = rows[-1].seq


def _entry(row: Any) -> Entry:
    return Entry(row.seq, row.at, row.actor, row.action, row.subject, json.loads(row.detail))


def head(connection: Connection) -> Head:
    row = connection.execute(select(audit_head).where(audit_head.c.id == 1)).one()
    return Head(row.seq, row.hash, row.key_id, bytes(row.signature))


def verified(
    connection: Connection, signature_valid: Callable[[Head], bool]
) -> tuple[Head, Verdict]:
    """The signed head, and the verdict on the whole trail up to it."""
    current = head(connection)
    return current, verify(entries(connection), current, signature_valid)


def recent(connection: Connection, subject: str = "", limit: int = 50) -> list[tuple[Entry, str]]:
    """The newest entries (about ``subject``) with their hashes, newest first."""
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if subject:
        query = query.where(audit_log.c.subject == subject)
    return [(_entry(row), row.hash) for row in connection.execute(query)]


def signed_by_hub(directory: KeyDirectory, hub: str) -> Callable[[Head], bool]:
    """A check of a head's signature against the hub's keys in the directory (any of them,
    including keys since rotated out: a head signed years ago must still verify)."""

    def valid(candidate: Head) -> bool:
        keys = {key.key_id: key for key in directory.keys_of(hub)}
        key = keys.get(candidate.key_id)
        statement = head_statement(candidate.seq, candidate.hash)
        return key is not None and key.verify(candidate.signature, statement)

    return valid
