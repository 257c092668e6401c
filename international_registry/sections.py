"""Party sections and their accounts in the international registry.

A section is opened on request: the national focal point (or an additional focal point)
submits an opening request naming the Party Section Administrators and listing supporting
documents; it gets a Request ID; the secretariat validates (or rejects) it; the section then
opens **provisionally**; once identity is verified the provisional status is removed.
Accounts opened in a section carry the section's status. What a provisional section may do is
the registry's policy (``international_registry.policy``).

    request:  received -> validated | rejected
    section:  provisional -> verified
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from article6.identifiers import check_party_code, format_account_id
from article6.model import AccountType
from article6.node import store
from article6.sql import UtcDateTime

metadata = MetaData()

opening_requests = Table(
    "opening_requests",
    metadata,
    Column("request_id", String(16), primary_key=True),
    Column("party", String(3), nullable=False),
    Column("submitted_by", Text, nullable=False),
    Column("focal_point", String(12), nullable=False),  # national or additional
    Column("administrators", Text, nullable=False),  # JSON list of names
    Column("documents", Text, nullable=False),  # JSON list of document names
    Column("status", String(12), nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)

sections = Table(
    "sections",
    metadata,
    Column("party", String(3), primary_key=True),
    Column("request_id", String(16), nullable=False),
    Column("status", String(12), nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("verified_at", UtcDateTime(), nullable=True),
)

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(40), primary_key=True),
    Column("party", String(3), nullable=False),
    Column("account_type", String(32), nullable=False),
    Column("ars", Boolean, nullable=False),  # held in the additional registry services
    Column("holder", Text, nullable=False),  # the Party or an entity it authorized
    Column("cooperative_approaches", Text, nullable=False),  # comma-separated; empty: any
    Column("open", Boolean, nullable=False),
)


# An account's own provisional status, apart from its section's: an account whose authorized
# representatives are not yet verified stays provisional after its section is verified. An
# account with no row here follows its section alone.
account_status = Table(
    "account_status",
    metadata,
    Column("account_id", String(40), primary_key=True),
    Column("provisional", Boolean, nullable=False),
    Column("verified_at", UtcDateTime(), nullable=True),
)


class RequestStatus(enum.StrEnum):
    RECEIVED = "received"
    VALIDATED = "validated"
    REJECTED = "rejected"


class SectionStatus(enum.StrEnum):
    PROVISIONAL = "provisional"
    VERIFIED = "verified"


class FocalPoint(enum.StrEnum):
    NATIONAL = "national"
    ADDITIONAL = "additional"


class SectionError(Exception):
    """A secretariat operation that the section lifecycle does not allow."""


@dataclass(frozen=True)
class Account:
    account_id: str
    party: str
    account_type: AccountType
    ars: bool
    holder: str
    cooperative_approaches: frozenset[str]
    open: bool

    def allows(self, cooperative_approach: str) -> bool:
        linked = self.cooperative_approaches
        return not linked or cooperative_approach in linked


def _now() -> datetime:
    return datetime.now(UTC)


def submit_request(
    connection: Connection,
    party: str,
    submitted_by: str,
    focal_point: FocalPoint,
    administrators: Sequence[str],
    documents: Sequence[str],
) -> str:
    """Record an opening request and return its Request ID (``REQ-0001``...)."""
    check_party_code(party)
    if not administrators:
        raise SectionError("an opening request names at least one Party Section Administrator")
    request_id = f"REQ-{store.next_number(connection, 'opening-request'):04d}"
    connection.execute(
        insert(opening_requests).values(
            request_id=request_id, party=party, submitted_by=submitted_by,
            focal_point=focal_point.value, administrators=json.dumps(list(administrators)),
            documents=json.dumps(list(documents)), status=RequestStatus.RECEIVED.value,
            reason="", received_at=_now(),
        )
    )  # fmt: skip
    return request_id


def request_party_and_status(connection: Connection, request_id: str) -> tuple[str, RequestStatus]:
    """The Party of an opening request and its status; SectionError if there is none."""
    row = connection.execute(
        select(opening_requests.c.party, opening_requests.c.status).where(
            opening_requests.c.request_id == request_id
        )
    ).first()
    if row is None:
        raise SectionError(f"no opening request {request_id}")
    return row.party, RequestStatus(row.status)


@dataclass(frozen=True)
class OpeningRequest:
    request_id: str
    party: str
    submitted_by: str
    focal_point: str
    administrators: list[str]
    documents: list[str]
    status: RequestStatus
    reason: str
    received_at: datetime


def list_requests(
    connection: Connection, request_id: str = "", status: RequestStatus | None = None
) -> list[OpeningRequest]:
    """Opening requests, oldest first (one, by id; or those with a status)."""
    query = select(opening_requests).order_by(opening_requests.c.received_at)
    if request_id:
        query = query.where(opening_requests.c.request_id == request_id)
    if status is not None:
        query = query.where(opening_requests.c.status == status.value)
    return [
        OpeningRequest(
            row.request_id,
            row.party,
            row.submitted_by,
            row.focal_point,
            json.loads(row.administrators),
            json.loads(row.documents),
            RequestStatus(row.status),
            row.reason,
            row.received_at,
        )
        for row in connection.execute(query)
    ]


def decide_request(connection: Connection, request_id: str, valid: bool, reason: str = "") -> None:
    """The secretariat validates a received request, or rejects it with a reason."""
    _, status = request_party_and_status(connection, request_id)
    if status is not RequestStatus.RECEIVED:
        raise SectionError(f"{request_id} is already {status.value}")
    if not valid and not reason:
        raise SectionError("a rejection needs its reason")
    decided = RequestStatus.VALIDATED if valid else RequestStatus.REJECTED
    connection.execute(
        update(opening_requests)
        .where(opening_requests.c.request_id == request_id)
        .values(status=decided.value, reason=reason)
    )


def open_section(connection: Connection, request_id: str) -> str:
    """Open the Party's section provisionally, on a validated request; returns the Party."""
    party, status = request_party_and_status(connection, request_id)
    if status is not RequestStatus.VALIDATED:
        raise SectionError(f"{request_id} is {status.value}, not validated")
    if section_status(connection, party) is not None:
        raise SectionError(f"the section of {party} is already open")
    connection.execute(
        insert(sections).values(
            party=party, request_id=request_id, status=SectionStatus.PROVISIONAL.value,
            opened_at=_now(), verified_at=None,
        )
    )  # fmt: skip
    return party


def verify_section(connection: Connection, party: str) -> None:
    """Identity verified: the section and its accounts lose their provisional status."""
    if section_status(connection, party) is not SectionStatus.PROVISIONAL:
        raise SectionError(f"the section of {party} is not provisionally open")
    connection.execute(
        update(sections)
        .where(sections.c.party == party)
        .values(status=SectionStatus.VERIFIED.value, verified_at=_now())
    )


def section_request(connection: Connection, party: str) -> str | None:
    """The opening request a Party's open section came from."""
    row = connection.execute(select(sections.c.request_id).where(sections.c.party == party)).first()
    return None if row is None else str(row.request_id)


def section_status(connection: Connection, party: str) -> SectionStatus | None:
    row = connection.execute(select(sections.c.status).where(sections.c.party == party)).first()
    return None if row is None else SectionStatus(row.status)


def open_account(
    connection: Connection,
    registry_id: str,
    party: str,
    account_type: AccountType,
    *,
    ars: bool = False,
    holder: str = "",
    cooperative_approaches: frozenset[str] = frozenset(),
) -> str:
    """Open an account in ``party``'s section (open, provisionally or verified)."""
    if section_status(connection, party) is None:
        raise SectionError(f"{party} has no open section")
    account_id = format_account_id(registry_id, 1000 + store.next_number(connection, "account"))
    connection.execute(
        insert(accounts).values(
            account_id=account_id, party=party, account_type=account_type.name.lower(), ars=ars,
            holder=holder or party, cooperative_approaches=",".join(sorted(cooperative_approaches)),
            open=True,
        )
    )  # fmt: skip
    return account_id


def set_account_provisional(connection: Connection, account_id: str, provisional: bool) -> None:
    """Record the account's own status (its representatives' identity verified, or not)."""
    connection.execute(delete(account_status).where(account_status.c.account_id == account_id))
    connection.execute(insert(account_status).values(
        account_id=account_id, provisional=provisional,
        verified_at=None if provisional else _now(),
    ))  # fmt: skip


def account_provisional(connection: Connection, account_id: str) -> bool:
    """Whether the account is provisional on its own account (its section aside)."""
    row = connection.execute(
        select(account_status.c.provisional).where(account_status.c.account_id == account_id)
    ).first()
    return bool(row and row.provisional)


def get_account(connection: Connection, account_id: str) -> Account | None:
    row = connection.execute(select(accounts).where(accounts.c.account_id == account_id)).first()
    if row is None:
        return None
    return Account(
        account_id=row.account_id,
        party=row.party,
        account_type=AccountType[row.account_type.upper()],
        ars=row.ars,
        holder=row.holder,
        cooperative_approaches=frozenset(filter(None, row.cooperative_approaches.split(","))),
        open=row.open,
    )
