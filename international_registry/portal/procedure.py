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

from international_registry import sections
from international_registry.portal import store
from international_registry.portal.letter import letter_pdf
from international_registry.portal.mail import Mail, Mailer

DOCUMENTS = Path(__file__).resolve().parent / "documents.toml"
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


def follow_upload_link(connection: Connection, token: str) -> tuple[str, str]:
    """Use a link once: (request id, the administrator's e-mail), or Refused when it was
    used already, has expired or never existed."""
    key = store.digest(token)
    row = connection.execute(
        select(store.upload_links).where(store.upload_links.c.digest == key)
    ).first()
    connection.execute(delete(store.upload_links).where(store.upload_links.c.digest == key))
    if row is None or row.expires_at.replace(tzinfo=store.now().tzinfo) < store.now():
        raise Refused("this link was used already or has expired: sign in with your e-mail "
                      "address, or ask the secretariat for a new link")  # fmt: skip
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
