"""The portal's tables: the focal-point directory the secretariat keeps, the people of each
request (administrators with their e-mail addresses), one-time passcodes, upload links, the
documents uploaded, and the portal's audit trail.

Passcodes and upload links are stored only as SHA-256 digests: the database never holds what
would let its reader sign in or upload.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    update,
)

from article6.sql import UtcDateTime

metadata = MetaData()

focal_points = Table(
    "portal_focal_points",
    metadata,
    Column("email", String(254), primary_key=True),
    Column("party", String(3), nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", String(12), nullable=False),  # national or additional
)

people = Table(
    "portal_people",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(16), nullable=False, index=True),
    Column("party", String(3), nullable=False),
    Column("role", String(24), nullable=False),  # administrator, representative or user
    Column("name", Text, nullable=False),
    Column("email", String(254), nullable=False, index=True),
    Column("identity_verified", Boolean, nullable=False),
    Column("account_id", String(40), nullable=False),  # a representative's account; else ""
    UniqueConstraint("request_id", "email", "role", "account_id"),
)

# Requests made once a section is open: an account (approved by the secretariat) and access
# for an additional user (approved by the section's administrators).
account_requests = Table(
    "portal_account_requests",
    metadata,
    Column("request_id", String(16), primary_key=True),  # ACR-0001
    Column("party", String(3), nullable=False),
    Column("account_type", String(32), nullable=False),
    Column("ars", Boolean, nullable=False),
    Column("holder", Text, nullable=False),
    Column("representative_name", Text, nullable=False),
    Column("representative_email", String(254), nullable=False),
    Column("requested_by", String(254), nullable=False),
    Column("status", String(12), nullable=False),  # requested, approved, rejected
    Column("reason", Text, nullable=False),
    Column("account_id", String(40), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
)

access_requests = Table(
    "portal_access_requests",
    metadata,
    Column("request_id", String(16), primary_key=True),  # ACC-0001
    Column("party", String(3), nullable=False),
    Column("name", Text, nullable=False),
    Column("email", String(254), nullable=False),
    Column("status", String(12), nullable=False),  # requested, approved, rejected
    Column("decided_by", String(254), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
)

passcodes = Table(
    "portal_passcodes",
    metadata,
    Column("email", String(254), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
)

upload_links = Table(
    "portal_upload_links",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("request_id", String(16), nullable=False),
    Column("email", String(254), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

documents = Table(
    "portal_documents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(16), nullable=False, index=True),
    Column("party", String(3), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("filename", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("stored_as", Text, nullable=False),  # path under the documents folder
    Column("uploaded_by", String(254), nullable=False),
    Column("uploaded_at", UtcDateTime(), nullable=False),
)

audit = Table(
    "portal_audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(254), nullable=False),
    Column("action", String(40), nullable=False),
    Column("subject", String(40), nullable=False, index=True),
    Column("detail", Text, nullable=False),  # JSON object
)


class FocalPointKind(enum.StrEnum):
    NATIONAL = "national"
    ADDITIONAL = "additional"


@dataclass(frozen=True)
class FocalPointEntry:
    email: str
    party: str
    name: str
    kind: FocalPointKind


@dataclass(frozen=True)
class Person:
    id: int
    request_id: str
    party: str
    role: str
    name: str
    email: str
    identity_verified: bool
    account_id: str = ""


def now() -> datetime:
    return datetime.now(UTC)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normal_email(email: str) -> str:
    """Addresses are compared as the portal stores them: trimmed and lower case."""
    return email.strip().lower()


# --- the focal-point directory -------------------------------------------------------------


def put_focal_point(connection: Connection, entry: FocalPointEntry) -> None:
    email = normal_email(entry.email)
    connection.execute(delete(focal_points).where(focal_points.c.email == email))
    connection.execute(insert(focal_points).values(
        email=email, party=entry.party, name=entry.name, kind=entry.kind.value
    ))  # fmt: skip


def remove_focal_point(connection: Connection, email: str) -> bool:
    done = connection.execute(
        delete(focal_points).where(focal_points.c.email == normal_email(email))
    )
    return bool(done.rowcount)


def focal_point(connection: Connection, email: str) -> FocalPointEntry | None:
    row = connection.execute(
        select(focal_points).where(focal_points.c.email == normal_email(email))
    ).first()
    if row is None:
        return None
    return FocalPointEntry(row.email, row.party, row.name, FocalPointKind(row.kind))


def list_focal_points(connection: Connection, party: str = "") -> list[FocalPointEntry]:
    query = select(focal_points).order_by(focal_points.c.party, focal_points.c.email)
    if party:
        query = query.where(focal_points.c.party == party)
    return [FocalPointEntry(r.email, r.party, r.name, FocalPointKind(r.kind))
            for r in connection.execute(query)]  # fmt: skip


# --- the people of a request ---------------------------------------------------------------


def add_people(
    connection: Connection, request_id: str, party: str, role: str,
    named: Sequence[tuple[str, str]], account_id: str = "",
) -> None:  # fmt: skip
    """Record the people a request names (name, e-mail) in ``role``."""
    for name, email in named:
        connection.execute(insert(people).values(
            request_id=request_id, party=party, role=role, name=name,
            email=normal_email(email), identity_verified=False, account_id=account_id,
        ))  # fmt: skip


def people_of_party(connection: Connection, party: str) -> list[Person]:
    rows = connection.execute(select(people).where(people.c.party == party).order_by(people.c.id))
    return [_person(row) for row in rows]


def unverified_people(connection: Connection) -> list[Person]:
    query = select(people).where(people.c.identity_verified.is_(False)).order_by(people.c.id)
    return [_person(row) for row in connection.execute(query)]


def verify_person(connection: Connection, person_id: int) -> Person | None:
    row = connection.execute(select(people).where(people.c.id == person_id)).first()
    if row is None:
        return None
    connection.execute(update(people).where(people.c.id == person_id)
                       .values(identity_verified=True))  # fmt: skip
    return _person(row)


def people_of(connection: Connection, request_id: str) -> list[Person]:
    rows = connection.execute(
        select(people).where(people.c.request_id == request_id).order_by(people.c.id)
    )
    return [_person(row) for row in rows]


def roles_of(connection: Connection, email: str) -> list[Person]:
    rows = connection.execute(select(people).where(people.c.email == normal_email(email)))
    return [_person(row) for row in rows]


def _person(row: Any) -> Person:
    return Person(row.id, row.request_id, row.party, row.role, row.name, row.email,
                  row.identity_verified, row.account_id)  # fmt: skip


# --- one-time passcodes --------------------------------------------------------------------


def new_passcode(
    connection: Connection, email: str, lifetime: timedelta, resend_after: timedelta
) -> str | None:
    """A fresh six-digit passcode for ``email`` (its digest replaces any earlier one), or
    None if one was sent less than ``resend_after`` ago."""
    email, at = normal_email(email), now()
    earlier = connection.execute(select(passcodes).where(passcodes.c.email == email)).first()
    if earlier is not None and earlier.sent_at.replace(tzinfo=UTC) + resend_after > at:
        return None
    code = f"{secrets.randbelow(10**6):06d}"
    connection.execute(delete(passcodes).where(passcodes.c.email == email))
    connection.execute(insert(passcodes).values(
        email=email, digest=digest(f"{email}:{code}"), sent_at=at, expires_at=at + lifetime,
        attempts=0,
    ))  # fmt: skip
    return code


def use_passcode(connection: Connection, email: str, code: str, attempts_max: int) -> str:
    """Sign in with ``code``: once, before it expires, within ``attempts_max`` tries. Returns
    "" when it signs in, else why not; it does not raise, so that the transaction commits a
    wrong try's count (or the end of a passcode) whatever the answer."""
    email = normal_email(email)
    row = connection.execute(select(passcodes).where(passcodes.c.email == email)).first()
    if row is None:
        return "no passcode was sent to this address, or it was used: ask again"
    if row.expires_at.replace(tzinfo=UTC) < now() or row.attempts >= attempts_max:
        connection.execute(delete(passcodes).where(passcodes.c.email == email))
        return "this passcode has expired or was tried too often: ask again"
    if not secrets.compare_digest(row.digest, digest(f"{email}:{code.strip()}")):
        connection.execute(update(passcodes).where(passcodes.c.email == email)
                           .values(attempts=row.attempts + 1))  # fmt: skip
        return "wrong passcode"
    connection.execute(delete(passcodes).where(passcodes.c.email == email))
    return ""


# --- the audit trail -----------------------------------------------------------------------


def record(connection: Connection, actor: str, action: str, subject: str, **detail: Any) -> None:
    """Append who did what to which subject, and when: never changed afterwards."""
    connection.execute(insert(audit).values(
        at=now(), actor=actor, action=action, subject=subject,
        detail=json.dumps(detail, sort_keys=True, default=str),
    ))  # fmt: skip


def audit_entries(connection: Connection, subject: str = "") -> list[dict[str, Any]]:
    query = select(audit).order_by(audit.c.seq)
    if subject:
        query = query.where(audit.c.subject == subject)
    return [{"seq": r.seq, "at": r.at, "actor": r.actor, "action": r.action,
             "subject": r.subject, "detail": json.loads(r.detail)}
            for r in connection.execute(query)]  # fmt: skip


def list_account_requests(connection: Connection, status: str = "") -> list[Any]:
    query = select(account_requests).order_by(account_requests.c.requested_at)
    if status:
        query = query.where(account_requests.c.status == status)
    return list(connection.execute(query))


def count(connection: Connection, table: Table) -> int:
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
