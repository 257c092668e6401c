"""The opening procedure's steps, each one SQL transaction on the registry's database: who
may take it, what it records (and writes to the audit trail), and which e-mails it makes.
The web pages (``app.py``) call these and send the e-mails once the transaction commits.

Refusals are ``Refused`` with a message a person can act on; nothing is changed by them.
"""

from __future__ import annotations

import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select

from article6.codes import Refusal
from article6.identifiers import check_party_code
from article6.model import AccountType
from article6.node import store as node_store
from international_registry import sections
from international_registry.portal import store
from international_registry.portal.letter import letter_pdf
from international_registry.portal.mail import Mail, Mailer

DOCUMENTS = Path(__file__).resolve().parent / "documents.toml"
ACCOUNT_KINDS = {kind.name.lower().replace("_", "-"): kind for kind in AccountType}
ADMINISTRATOR = "administrator"


class Refused(Exception):
    """Input a step cannot take, or a state it cannot be taken in: nothing was changed."""


class Forbidden(Refused):
    """A step the signed-in person may not take (or a page they may not see)."""


class TooLarge(Refused):
    """An upload over the size limit."""


@dataclass(frozen=True)
class Catalogue:
    """The supporting documents (documents.toml): kinds, the types and size allowed."""

    kinds: dict[str, str]  # key -> name
    required: frozenset[str]
    types: dict[str, str]  # content type -> file suffix
    max_bytes: int


@cache
def catalogue(path: Path = DOCUMENTS) -> Catalogue:
    with path.open("rb") as handle:
        raw = tomllib.load(handle)
    kinds = {item["key"]: item["name"] for item in raw["documents"]}
    required = frozenset(item["key"] for item in raw["documents"] if item.get("required"))
    return Catalogue(kinds, required, dict(raw["types"]), int(raw["max_bytes"]))


@dataclass(frozen=True)
class Who:
    """A signed-in person and what they are: secretariat officer, a Party's focal point, an
    administrator of some requests."""

    email: str
    secretariat: bool = False
    focal_point: store.FocalPointEntry | None = None
    roles: tuple[store.Person, ...] = ()

    @property
    def known(self) -> bool:
        return self.secretariat or self.focal_point is not None or bool(self.roles)

    def may_see(self, request_id: str, party: str) -> bool:
        """The secretariat, the Party's focal points, and the people the request names."""
        if self.secretariat:
            return True
        if self.focal_point is not None and self.focal_point.party == party:
            return True
        return any(person.request_id == request_id for person in self.roles)

    def administers(self, request_id: str) -> bool:
        return any(p.request_id == request_id and p.role == ADMINISTRATOR for p in self.roles)


def who(connection: Connection, email: str, secretariat: frozenset[str]) -> Who:
    email = store.normal_email(email)
    return Who(email, email in secretariat, store.focal_point(connection, email),
               tuple(store.roles_of(connection, email)))  # fmt: skip


@dataclass
class Done:
    """What a step leaves to do once it has committed: the e-mails to send."""

    mails: list[Mail] = field(default_factory=list)
    result: Any = None


# --- signing in ----------------------------------------------------------------------------


def ask_passcode(
    connection: Connection, mailer: Mailer, email: str, secretariat: frozenset[str],
    lifetime: timedelta,
) -> Done:  # fmt: skip
    """Send a passcode to a known address; an unknown one is refused."""
    person = who(connection, email, secretariat)
    if not person.known:
        raise Refused(
            "this address is not known to the portal: focal points are listed by the "
            "secretariat, administrators by the opening request naming them"
        )
    code = store.new_passcode(connection, person.email, lifetime, timedelta(seconds=30))
    if code is None:
        return Done()  # one was sent moments ago: that one stands
    minutes = int(lifetime.total_seconds() // 60)
    return Done([mailer.render("passcode", [person.email], code=code, minutes=minutes)])


# --- step 1 and 2: the opening request, and its acknowledgement ----------------------------


def submit_request(
    connection: Connection, mailer: Mailer, by: Who, administrators: list[tuple[str, str]],
    portal_url: str,
) -> Done:  # fmt: skip
    """A focal point's electronic Party Section Opening Request: recorded with its Request
    ID, acknowledged by e-mail to every administrator it names."""
    point = by.focal_point
    if point is None:
        raise Forbidden("only a national or additional focal point listed by the secretariat "
                      "may submit a Party Section Opening Request")  # fmt: skip
    named = [(name.strip(), store.normal_email(email)) for name, email in administrators
             if name.strip() or email.strip()]  # fmt: skip
    _check_people(named)
    if sections.section_status(connection, point.party) is not None:
        raise Refused(f"the section of {point.party} is already open")
    focal = sections.FocalPoint(point.kind.value)
    kinds = catalogue().kinds
    request_id = sections.submit_request(
        connection, point.party, f"{point.name} <{point.email}>", focal,
        [name for name, _ in named], [kinds[key] for key in sorted(catalogue().required)],
    )  # fmt: skip
    store.add_people(connection, request_id, point.party, ADMINISTRATOR, named)
    store.record(connection, by.email, "request.submitted", request_id, party=point.party,
                 administrators=[email for _, email in named])  # fmt: skip
    mail = mailer.render(
        "acknowledgement", [email for _, email in named], request_id=request_id,
        party=point.party, focal_point=point, administrators=named, portal_url=portal_url,
    )  # fmt: skip
    return Done([mail], request_id)


@dataclass(frozen=True)
class PaperForm:
    """A Party Section Opening Request on paper (Word or PDF), signed by the focal point and
    e-mailed to the secretariat, which enters it."""

    party: str
    submitter: tuple[str, str]  # the focal point's name and e-mail address
    kind: store.FocalPointKind
    administrators: list[tuple[str, str]]


def enter_paper_request(
    connection: Connection, mailer: Mailer, by: Who, form: PaperForm, portal_url: str
) -> Done:
    """The secretariat enters a paper form; the confirmation with the Request ID goes to the
    submitter."""
    if not by.secretariat:
        raise Forbidden("only the secretariat enters paper forms")
    party = form.party.strip().upper()
    submitter = (form.submitter[0].strip(), store.normal_email(form.submitter[1]))
    _check_people([submitter])
    named = [(name.strip(), store.normal_email(email)) for name, email in form.administrators
             if name.strip() or email.strip()]  # fmt: skip
    _check_people(named)
    try:
        check_party_code(party)
    except Refusal as refusal:
        raise Refused(f"{party or 'the Party'} is not an ISO 3166-1 alpha-3 code") from refusal
    if sections.section_status(connection, party) is not None:
        raise Refused(f"the section of {party} is already open")
    kinds = catalogue().kinds
    request_id = sections.submit_request(
        connection, party, f"{submitter[0]} <{submitter[1]}> (paper form)",
        sections.FocalPoint(form.kind.value), [name for name, _ in named],
        [kinds[key] for key in sorted(catalogue().required)],
    )  # fmt: skip
    store.add_people(connection, request_id, party, ADMINISTRATOR, named)
    store.record(connection, by.email, "request.entered", request_id, party=party,
                 submitter=submitter[1])  # fmt: skip
    point = store.FocalPointEntry(submitter[1], party, submitter[0], form.kind)
    mail = mailer.render("paper_confirmation", [submitter[1]], request_id=request_id,
                         party=party, focal_point=point, administrators=named,
                         portal_url=portal_url)  # fmt: skip
    return Done([mail], request_id)


def _check_people(named: list[tuple[str, str]]) -> None:
    if not named:
        raise Refused("name at least one Party Section Administrator, with an e-mail address")
    for name, email in named:
        local, at, domain = email.partition("@")
        if not name or not at or not local or "." not in domain or " " in email:
            raise Refused(
                f"each administrator needs a name and an e-mail address ({name or email})"
            )
    emails = [email for _, email in named]
    if len(set(emails)) != len(emails):
        raise Refused("each administrator needs an e-mail address of their own")


# --- step 3 and 4: the secretariat's decision, and the upload links ------------------------


def decide(
    connection: Connection, mailer: Mailer, by: Who, request_id: str, valid: bool, reason: str,
    portal_url: str, link_lifetime: timedelta,
) -> Done:  # fmt: skip
    """The secretariat validates a request (each administrator gets a private upload link)
    or rejects it with the reason (each administrator is told)."""
    if not by.secretariat:
        raise Forbidden("only the secretariat validates or rejects opening requests")
    if not valid and not reason.strip():
        raise Refused("a rejection says why")
    try:
        sections.decide_request(connection, request_id, valid, reason.strip())
    except sections.SectionError as error:
        raise Refused(str(error)) from error
    named = [p for p in store.people_of(connection, request_id) if p.role == ADMINISTRATOR]
    store.record(connection, by.email, "request.validated" if valid else "request.rejected",
                 request_id, reason=reason.strip())  # fmt: skip
    if not valid:
        mail = mailer.render("rejected", [p.email for p in named], request_id=request_id,
                             reason=reason.strip())  # fmt: skip
        return Done([mail])
    mails = []
    for person in named:
        token = new_upload_link(connection, request_id, person.email, link_lifetime)
        mails.append(mailer.render(
            "validated", [person.email], request_id=request_id, person=person,
            link=f"{portal_url}/upload/{token}", hours=int(link_lifetime.total_seconds() // 3600),
        ))  # fmt: skip
    return Done(mails)


def new_upload_link(
    connection: Connection, request_id: str, email: str, lifetime: timedelta
) -> str:
    token = secrets.token_urlsafe(32)
    connection.execute(store.upload_links.insert().values(
        digest=store.digest(token), request_id=request_id, email=email,
        expires_at=store.now() + lifetime,
    ))  # fmt: skip
    return token


def upload_link(connection: Connection, token: str, use: bool) -> tuple[str, str]:
    """(request id, the administrator's e-mail) of a link, using it up when ``use``; Refused
    when it was used already, has expired or never existed."""
    key = store.digest(token)
    row = connection.execute(
        select(store.upload_links).where(store.upload_links.c.digest == key)
    ).first()
    if row is None or row.expires_at.replace(tzinfo=store.now().tzinfo) < store.now():
        raise Refused("this link was used already or has expired: sign in with your e-mail "
                      "address, or ask the secretariat for a new link")  # fmt: skip
    if use:
        connection.execute(delete(store.upload_links).where(store.upload_links.c.digest == key))
    return row.request_id, row.email


# --- step 6: the supporting documents ------------------------------------------------------

_MAGIC = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
}


@dataclass(frozen=True)
class Upload:
    kind: str
    filename: str
    content_type: str
    data: bytes


def check_upload(upload: Upload) -> None:
    """The kind is listed, the type allowed (and the bytes are of that type), the size
    within the limit."""
    listed = catalogue()
    if upload.kind not in listed.kinds:
        raise Refused("choose which supporting document this is")
    if not upload.data:
        raise Refused("choose a file to upload: none was sent, or it is empty")
    if len(upload.data) > listed.max_bytes:
        raise TooLarge(f"{upload.filename} is larger than {listed.max_bytes // 2**20} MiB")
    if upload.content_type not in listed.types or not upload.data.startswith(
        _MAGIC[upload.content_type]
    ):
        allowed = ", ".join(sorted(listed.types.values()))
        raise Refused(f"{upload.filename or 'the file'} is not of an allowed type ({allowed})")


def add_document(connection: Connection, by: Who, request_id: str, upload: Upload,
                 folder: Path) -> Done:  # fmt: skip
    """Store a supporting document in the Party's folder (its SHA-256 recorded); only the
    request's administrators and the secretariat may, once the request is validated."""
    party, status = _request_state(connection, request_id)
    if not (by.administers(request_id) or by.secretariat):
        raise Forbidden("only the request's administrators upload its documents")
    if status != sections.RequestStatus.VALIDATED:
        raise Refused(
            f"request {request_id} is {status.value}: documents come once it is validated"
        )
    check_upload(upload)
    suffix = catalogue().types[upload.content_type]
    sha256 = _keep(folder, party, request_id, upload.data, suffix)
    relative = Path(party) / request_id / f"{sha256}{suffix}"
    connection.execute(store.documents.insert().values(
        request_id=request_id, party=party, kind=upload.kind, filename=upload.filename[:200],
        size_bytes=len(upload.data), sha256=sha256, stored_as=str(relative),
        uploaded_by=by.email, uploaded_at=store.now(),
    ))  # fmt: skip
    store.record(connection, by.email, "document.uploaded", request_id, kind=upload.kind,
                 sha256=sha256, size_bytes=len(upload.data))  # fmt: skip
    return Done(result=sha256)


def _request_state(connection: Connection, request_id: str) -> tuple[str, sections.RequestStatus]:
    try:
        return sections.request_party_and_status(connection, request_id)
    except sections.SectionError as error:
        raise Refused(str(error)) from error


def missing_documents(connection: Connection, request_id: str) -> list[str]:
    """The required documents not yet uploaded for the request, by name."""
    query = select(store.documents.c.kind).where(store.documents.c.request_id == request_id)
    have = {row.kind for row in connection.execute(query)}
    listed = catalogue()
    return [listed.kinds[key] for key in sorted(listed.required - have)]


# --- step 7: the provisional opening and its Letter of Acknowledgement -----------------------

LETTER = "letter"


def open_provisionally(
    connection: Connection, mailer: Mailer, by: Who, request_id: str, folder: Path,
    portal_url: str,
) -> Done:  # fmt: skip
    """The secretariat opens the section provisionally once the required documents are in,
    and issues the Letter of Acknowledgement (kept in the Party's folder)."""
    if not by.secretariat:
        raise Forbidden("only the secretariat opens sections")
    missing = missing_documents(connection, request_id)
    if missing:
        raise Refused(f"{request_id} still needs: {'; '.join(missing)}")
    try:
        party = sections.open_section(connection, request_id)
    except sections.SectionError as error:
        raise Refused(str(error)) from error
    named = [p for p in store.people_of(connection, request_id) if p.role == ADMINISTRATOR]
    pdf = letter_pdf(request_id, party, named, store.now())
    sha256 = _keep(folder, party, request_id, pdf, ".pdf")
    connection.execute(store.documents.insert().values(
        request_id=request_id, party=party, kind=LETTER,
        filename=f"Letter-of-Acknowledgement-{request_id}.pdf", size_bytes=len(pdf),
        sha256=sha256, stored_as=str(Path(party) / request_id / f"{sha256}.pdf"),
        uploaded_by=by.email, uploaded_at=store.now(),
    ))  # fmt: skip
    store.record(connection, by.email, "section.opened", request_id, party=party,
                 letter_sha256=sha256)  # fmt: skip
    to = [p.email for p in named] + [f.email for f in store.list_focal_points(connection, party)]
    mail = mailer.render("opened", to, request_id=request_id, party=party,
                         link=f"{portal_url}/requests/{request_id}/letter.pdf")  # fmt: skip
    return Done([mail], party)


def _keep(folder: Path, party: str, request_id: str, data: bytes, suffix: str) -> str:
    """Store ``data`` in the Party's folder under its SHA-256; return the digest."""
    sha256 = store.digest_bytes(data)
    target = folder / party / request_id / f"{sha256}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not target.exists():  # content-addressed: the same bytes are stored once
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)
    return sha256


def letter_of(connection: Connection, request_id: str) -> Path | None:
    """Where the request's letter is kept (relative to the documents folder), if issued."""
    row = connection.execute(
        select(store.documents.c.stored_as).where(store.documents.c.request_id == request_id)
        .where(store.documents.c.kind == LETTER)
    ).first()  # fmt: skip
    return None if row is None else Path(row.stored_as)


# --- step 7, continued: identity verification, per person and per account -----------------

REPRESENTATIVE, USER = "representative", "user"


def verify_identity(connection: Connection, mailer: Mailer, by: Who, person_id: int) -> Done:
    """The secretariat records a person's identity as verified. When every administrator of
    a section is, the section loses its provisional status; when every representative of an
    account is too, so does that account."""
    if not by.secretariat:
        raise Forbidden("only the secretariat verifies identities")
    person = store.verify_person(connection, person_id)
    if person is None:
        raise Refused(f"no person {person_id}")
    store.record(connection, by.email, "identity.verified", person.request_id,
                 email=person.email, role=person.role)  # fmt: skip
    mails = [mailer.render("verified", [person.email], person=person)]
    mails += _lift(connection, mailer, by, person.party)
    return Done(mails)


def verify_identities(
    connection: Connection, mailer: Mailer, by: Who, email: str, party: str = ""
) -> Done:
    """Verify every role ``email`` has not yet had verified (for ``party``, or any)."""
    found = [p for p in store.roles_of(connection, email)
             if not p.identity_verified and p.party == (party or p.party)]  # fmt: skip
    if not found:
        raise Refused(f"no one to verify at {email}")
    done = Done()
    for person in found:
        done.mails += verify_identity(connection, mailer, by, person.id).mails
    return done


def _lift(connection: Connection, mailer: Mailer, by: Who, party: str) -> list[Mail]:
    everyone = store.people_of_party(connection, party)
    administrators = [p for p in everyone if p.role == ADMINISTRATOR]
    mails = []
    status = sections.section_status(connection, party)
    if status is sections.SectionStatus.PROVISIONAL and all(
        p.identity_verified for p in administrators
    ):
        sections.verify_section(connection, party)
        store.record(connection, by.email, "section.verified", party, party=party)
        status = sections.SectionStatus.VERIFIED
        mails.append(mailer.render("section_verified", [p.email for p in administrators],
                                   party=party))  # fmt: skip
    if status is not sections.SectionStatus.VERIFIED:
        return mails
    for account_id in sorted({p.account_id for p in everyone if p.account_id}):
        representatives = [p for p in everyone if p.account_id == account_id]
        if sections.account_provisional(connection, account_id) and all(
            p.identity_verified for p in representatives
        ):
            sections.set_account_provisional(connection, account_id, False)
            store.record(connection, by.email, "account.verified", account_id, party=party)
            mails.append(mailer.render("account_verified", [p.email for p in representatives],
                                       account_id=account_id, party=party))  # fmt: skip
    return mails


# --- step 8: account requests (approved by the secretariat) --------------------------------


@dataclass(frozen=True)
class AccountWanted:
    account_type: str
    ars: bool
    holder: str  # "" for the Party itself
    representative: tuple[str, str]  # (name, e-mail) of the holder's representative, or ("", "")


def section_administered(connection: Connection, by: Who) -> str:
    """The Party whose open section ``by`` administers; Forbidden otherwise."""
    for person in by.roles:
        if person.role == ADMINISTRATOR and sections.section_status(connection, person.party):
            return person.party
    raise Forbidden("only an administrator of an open section requests accounts")


def request_account(
    connection: Connection, mailer: Mailer, by: Who, wanted: AccountWanted,
    secretariat: frozenset[str],
) -> Done:  # fmt: skip
    party = section_administered(connection, by)
    name, email = wanted.representative[0].strip(), store.normal_email(wanted.representative[1])
    if wanted.account_type not in ACCOUNT_KINDS:
        raise Refused("choose the type of account")
    if wanted.holder.strip() and not (name and email):
        raise Refused("an account held by an entity names its authorized representative")
    if email:
        _check_people([(name, email)])
    request_id = f"ACR-{node_store.next_number(connection, 'account-request'):04d}"
    connection.execute(store.account_requests.insert().values(
        request_id=request_id, party=party, account_type=wanted.account_type, ars=wanted.ars,
        holder=wanted.holder.strip(), representative_name=name, representative_email=email,
        requested_by=by.email, status="requested", reason="", account_id="",
        requested_at=store.now(),
    ))  # fmt: skip
    store.record(connection, by.email, "account.requested", request_id, party=party,
                 account_type=wanted.account_type, holder=wanted.holder.strip())  # fmt: skip
    mail = mailer.render("account_requested", [by.email, *sorted(secretariat)],
                         request_id=request_id, party=party, wanted=wanted)  # fmt: skip
    return Done([mail], request_id)


def decide_account(
    connection: Connection, mailer: Mailer, by: Who, request_id: str, approve: bool,
    reason: str, registry_id: str,
) -> Done:  # fmt: skip
    """The secretariat opens the requested account (provisional until its representative's
    identity is verified), or rejects the request with the reason."""
    if not by.secretariat:
        raise Forbidden("only the secretariat approves accounts")
    row = connection.execute(select(store.account_requests).where(
        store.account_requests.c.request_id == request_id)).first()  # fmt: skip
    if row is None or row.status != "requested":
        raise Refused(f"no account request {request_id} waiting for a decision")
    if not approve and not reason.strip():
        raise Refused("a rejection says why")
    told = [row.requested_by, *filter(None, [row.representative_email])]
    account_id = ""
    if approve:
        account_id = sections.open_account(
            connection, registry_id, row.party, ACCOUNT_KINDS[row.account_type], ars=row.ars,
            holder=row.holder,
        )  # fmt: skip
        if row.representative_email:
            opening = sections.section_request(connection, row.party)
            assert opening is not None, row.party  # open_account needs the open section
            store.add_people(connection, opening, row.party, REPRESENTATIVE,
                             [(row.representative_name, row.representative_email)],
                             account_id=account_id)  # fmt: skip
            sections.set_account_provisional(connection, account_id, True)
    status = "approved" if approve else "rejected"
    connection.execute(store.account_requests.update().where(
        store.account_requests.c.request_id == request_id).values(
        status=status, reason=reason.strip(), account_id=account_id))  # fmt: skip
    store.record(connection, by.email, f"account.{status}", request_id, account_id=account_id,
                 reason=reason.strip())  # fmt: skip
    mail = mailer.render("account_decided", told, request_id=request_id, approve=approve,
                         account_id=account_id, reason=reason.strip(), row=row)  # fmt: skip
    return Done([mail], account_id)


# --- step 8: access for additional users (approved by the section's administrators) --------


def request_access(connection: Connection, mailer: Mailer, name: str, email: str,
                   party: str, portal_url: str) -> Done:  # fmt: skip
    """Anyone may ask; access is given to the address, so only its holder can use it."""
    name, email, party = name.strip(), store.normal_email(email), party.strip().upper()
    _check_people([(name, email)])
    if sections.section_status(connection, party) is None:
        raise Refused(f"{party or 'that Party'} has no open section to request access to")
    known = [p for p in store.roles_of(connection, email) if p.party == party]
    pending = connection.execute(select(store.access_requests).where(
        store.access_requests.c.email == email, store.access_requests.c.party == party,
        store.access_requests.c.status == "requested")).first()  # fmt: skip
    if known or pending is not None:
        raise Refused(f"{email} already has, or has asked for, access to the section of {party}")
    request_id = f"ACC-{node_store.next_number(connection, 'access-request'):04d}"
    connection.execute(store.access_requests.insert().values(
        request_id=request_id, party=party, name=name, email=email, status="requested",
        decided_by="", requested_at=store.now(),
    ))  # fmt: skip
    store.record(connection, email, "access.requested", request_id, party=party)
    administrators = [p.email for p in store.people_of_party(connection, party)
                      if p.role == ADMINISTRATOR]  # fmt: skip
    return Done([
        mailer.render("access_received", [email], request_id=request_id, party=party),
        mailer.render("access_requested", administrators, request_id=request_id, party=party,
                      name=name, email=email, portal_url=portal_url),
    ], request_id)  # fmt: skip


def pending_access(connection: Connection, party: str) -> list[Any]:
    return list(connection.execute(select(store.access_requests).where(
        store.access_requests.c.party == party,
        store.access_requests.c.status == "requested")))  # fmt: skip


def decide_access(connection: Connection, mailer: Mailer, by: Who, request_id: str,
                  approve: bool, portal_url: str) -> Done:  # fmt: skip
    """An administrator of the Party's section gives an additional user access, or not."""
    row = connection.execute(select(store.access_requests).where(
        store.access_requests.c.request_id == request_id)).first()  # fmt: skip
    if row is None or row.status != "requested":
        raise Refused(f"no access request {request_id} waiting for a decision")
    if not any(p.role == ADMINISTRATOR and p.party == row.party for p in by.roles):
        raise Forbidden(f"only an administrator of the section of {row.party} decides")
    if approve:
        opening = next(p.request_id for p in by.roles
                       if p.role == ADMINISTRATOR and p.party == row.party)  # fmt: skip
        store.add_people(connection, opening, row.party, USER, [(row.name, row.email)])
    status = "approved" if approve else "rejected"
    connection.execute(store.access_requests.update().where(
        store.access_requests.c.request_id == request_id).values(
        status=status, decided_by=by.email))  # fmt: skip
    store.record(connection, by.email, f"access.{status}", request_id, email=row.email)
    mail = mailer.render("access_decided", [row.email], request_id=request_id, party=row.party,
                         approve=approve, portal_url=portal_url)  # fmt: skip
    return Done([mail])
