"""The portal's web pages (Starlette, Jinja2 templates), served by the international
registry's process on its own address: sign-in by e-mail passcode, the electronic opening
request, the secretariat's review queue, upload links and the supporting documents.

Sessions are signed cookies (HttpOnly, SameSite=Strict, Secure unless the operator serves
plain HTTP on loopback); every form carries a CSRF token bound to the session; every page is
sent with headers that keep it out of frames and caches and links out of Referer headers.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import jinja2
from sqlalchemy import Connection, select
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from article6.unit import Unit
from international_registry import sections
from international_registry.portal import procedure, store
from international_registry.portal.mail import Mailer, MailError, SmtpSettings
from international_registry.portal.procedure import (
    Done,
    Forbidden,
    Refused,
    TooLarge,
    Upload,
    Who,
)

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
T = TypeVar("T")
Run = Callable[[Callable[[Unit], T]], Awaitable[T]]


@dataclass(frozen=True)
class PortalSettings:
    """The ``[portal]`` table of the international registry's config (docs/PORTAL.md)."""

    listen: str
    public_url: str
    secret_key: str
    documents_folder: Path
    secretariat: frozenset[str]
    smtp: SmtpSettings
    cookie_secure: bool = True
    passcode_minutes: int = 10
    passcode_attempts: int = 5
    upload_link_hours: int = 72
    session_hours: int = 8
    registry_id: str = "UNIR"  # the international registry's: its accounts' ids start with it


def templates() -> jinja2.Environment:
    """The pages' and the e-mails' templates (HTML escaped, text as written)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape()
    )


class Portal:
    """What every page shares: the settings, the database (``run`` applies one transaction
    on the registry's writer), the mailer and the templates."""

    def __init__(self, settings: PortalSettings, run: Run[Any]) -> None:
        self.settings = settings
        self._run = run
        self.templates = Jinja2Templates(env=templates())
        self.mailer = Mailer(settings.smtp, templates())

    async def run(self, work: Callable[[Connection], T]) -> T:
        """Apply ``work`` in one unit of work on the registry's writer; the portal's steps
        note nothing for the commit, so they take its connection."""
        result: T = await self._run(lambda unit: work(unit.connection))
        return result

    async def send(self, done: Done) -> None:
        for mail in done.mails:
            await self.mailer.send(mail)


def portal_of(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


# --- sessions, CSRF, the signed-in person --------------------------------------------------


def csrf_token(request: Request) -> str:
    token: str = request.session.setdefault("csrf", secrets.token_urlsafe(32))
    return token


async def posted(request: Request, **limits: int) -> FormData:
    """The form, once its CSRF token matches the session's."""
    form = await request.form(**limits)
    sent, kept = str(form.get("csrf", "")), str(request.session.get("csrf", ""))
    if not kept or not secrets.compare_digest(sent, kept):
        raise HTTPException(403, "this form has expired: reload the page and try again")
    return form


async def me(request: Request) -> Who | None:
    email = request.session.get("email")
    if not email:
        return None
    secretariat = portal_of(request).settings.secretariat
    found: Who = await portal_of(request).run(lambda c: procedure.who(c, email, secretariat))
    return found


def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    context = {"me_email": request.session.get("email", ""), "csrf": csrf_token(request),
               **context}  # fmt: skip
    return portal_of(request).templates.TemplateResponse(
        request, template, context, status_code=status
    )


def to_sign_in(request: Request) -> Response:
    request.session["next"] = request.url.path
    return RedirectResponse("/sign-in", status_code=303)


def signed_in(
    handler: Callable[[Request, Who], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A page for signed-in people only: anyone else is sent to sign in, and back after."""

    async def for_person(request: Request) -> Response:
        person = await me(request)
        if person is None:
            return to_sign_in(request)
        return await handler(request, person)

    return for_person


def refused(request: Request, template: str, error: Refused, **context: Any) -> Response:
    status = 403 if isinstance(error, Forbidden) else 400
    return page(request, template, status, error=str(error), **context)


async def mailed(request: Request, done: Done) -> str:
    """Send a step's e-mails; what to tell the person if the server did not take them."""
    try:
        await portal_of(request).send(done)
    except MailError as error:
        log.error("portal e-mail not sent: %s", error)
        return "It was recorded, but the e-mail could not be sent; the secretariat will resend it."
    return ""


# --- pages ---------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    person = await me(request)
    requests: list[sections.OpeningRequest] = []
    access: list[Any] = []
    if person is not None:
        requests = await portal_of(request).run(lambda c: _visible_requests(c, person))
        access = await portal_of(request).run(lambda c: _access_to_decide(c, person))
    return page(request, "home.html", person=person, requests=requests, access=access)


def _access_to_decide(connection: Connection, person: Who) -> list[Any]:
    parties = {p.party for p in person.roles if p.role == procedure.ADMINISTRATOR}
    return [row for party in sorted(parties) for row in procedure.pending_access(connection, party)]


def _visible_requests(connection: Connection, person: Who) -> list[sections.OpeningRequest]:
    return [r for r in sections.list_requests(connection) if person.may_see(r.request_id, r.party)]


async def sign_in(request: Request) -> Response:
    if request.method == "GET":
        return page(request, "sign_in.html")
    form = await posted(request, max_fields=3)
    email = str(form.get("email", ""))
    portal = portal_of(request)
    settings = portal.settings
    lifetime = timedelta(minutes=settings.passcode_minutes)
    try:
        done = await portal.run(lambda c: procedure.ask_passcode(
            c, portal.mailer, email, settings.secretariat, lifetime))  # fmt: skip
    except Refused as error:
        return refused(request, "sign_in.html", error, email=email)
    request.session["pending"] = store.normal_email(email)
    warning = await mailed(request, done)
    return page(request, "passcode.html", email=store.normal_email(email), warning=warning)


async def passcode(request: Request) -> Response:
    pending = str(request.session.get("pending", ""))
    if not pending:
        return RedirectResponse("/sign-in", status_code=303)
    if request.method == "GET":
        return page(request, "passcode.html", email=pending)
    form = await posted(request, max_fields=3)
    attempts = portal_of(request).settings.passcode_attempts
    code = str(form.get("code", ""))
    problem = await portal_of(request).run(lambda c: store.use_passcode(c, pending, code, attempts))
    if problem:
        return page(request, "passcode.html", 400, email=pending, error=problem)
    next_page = str(request.session.pop("next", "/"))
    request.session.clear()  # a new session for the signed-in person: nothing carried over
    request.session["email"] = pending
    return RedirectResponse(next_page if next_page.startswith("/") else "/", status_code=303)


async def sign_out(request: Request) -> Response:
    await posted(request, max_fields=2)
    request.session.clear()
    return RedirectResponse("/", status_code=303)


@signed_in
async def new_request(request: Request, person: Who) -> Response:
    if request.method == "GET":
        if person.focal_point is None:
            return refused(request, "message.html", Forbidden(
                "only a national or additional focal point listed by the secretariat may "
                "submit a Party Section Opening Request"))  # fmt: skip
        return page(request, "request_new.html", person=person, rows=range(3))
    form = await posted(request, max_fields=20)
    named = [(str(form.get(f"name{i}", "")), str(form.get(f"email{i}", ""))) for i in range(3)]
    portal = portal_of(request)
    try:
        done = await portal.run(lambda c: procedure.submit_request(
            c, portal.mailer, person, named, portal.settings.public_url))  # fmt: skip
    except Refused as error:
        return refused(request, "request_new.html", error, person=person, rows=range(3),
                       named=named)  # fmt: skip
    warning = await mailed(request, done)
    return page(request, "request_submitted.html", request_id=done.result, warning=warning,
                administrators=[email for _, email in named if email])  # fmt: skip


@signed_in
async def show_request(request: Request, person: Who) -> Response:
    request_id = request.path_params["request_id"]
    found = await portal_of(request).run(lambda c: _request_page(c, person, request_id))
    if found is None:
        return refused(request, "message.html", Forbidden(
            f"there is no request {request_id} that you may see"))  # fmt: skip
    return page(request, "request.html", person=person, **found)


def _request_page(connection: Connection, person: Who, request_id: str) -> dict[str, Any] | None:
    listed = sections.list_requests(connection, request_id=request_id)
    if not listed or not person.may_see(request_id, listed[0].party):
        return None
    uploaded = connection.execute(
        select(store.documents).where(store.documents.c.request_id == request_id)
        .order_by(store.documents.c.id)
    ).all()  # fmt: skip
    return {"item": listed[0], "people": store.people_of(connection, request_id),
            "documents": [d for d in uploaded if d.kind != procedure.LETTER],
            "missing": procedure.missing_documents(connection, request_id),
            "kinds": procedure.catalogue().kinds,
            "letter": procedure.letter_of(connection, request_id) is not None,
            "section": sections.section_status(connection, listed[0].party)}  # fmt: skip


@signed_in
async def secretariat(request: Request, person: Who) -> Response:
    if not person.secretariat:
        return refused(request, "message.html", Forbidden("this page is the secretariat's"))
    return page(request, "secretariat.html", **await portal_of(request).run(_queue))


def _queue(connection: Connection) -> dict[str, Any]:
    waiting = select(store.account_requests).where(store.account_requests.c.status == "requested")
    return {"requests": sections.list_requests(connection),
            "accounts": connection.execute(waiting).all(),
            "people": store.unverified_people(connection)}  # fmt: skip


async def _form_step(request: Request, person: Who, step: Callable[[Connection, Who], Done],
                     said: Callable[[Done], str], max_fields: int) -> Response:  # fmt: skip
    """A form that takes one step of the procedure: CSRF checked, the step (a refusal shown
    as it is), its e-mails, what was done. The form is read once: ``max_fields`` is the first
    reader's limit."""
    await posted(request, max_fields=max_fields)
    try:
        done = await portal_of(request).run(lambda c: step(c, person))
    except Refused as error:
        return refused(request, "message.html", error)
    warning = await mailed(request, done)
    return page(request, "message.html", message=said(done), warning=warning)


@signed_in
async def paper_request(request: Request, person: Who) -> Response:
    form = await request.form(max_fields=16)
    paper = procedure.PaperForm(
        str(form.get("party", "")),
        (str(form.get("submitter_name", "")), str(form.get("submitter_email", ""))),
        store.FocalPointKind(str(form.get("kind") or "national")),
        [(str(form.get(f"name{i}", "")), str(form.get(f"email{i}", ""))) for i in range(3)],
    )  # fmt: skip
    portal = portal_of(request)
    return await _form_step(
        request, person, lambda c, by: procedure.enter_paper_request(
            c, portal.mailer, by, paper, portal.settings.public_url),
        lambda done: f"Paper request entered as {done.result}; the submitter was sent the "
        "confirmation with its Request ID.",
        max_fields=16,
    )  # fmt: skip


@signed_in
async def verify_person(request: Request, person: Who) -> Response:
    mailer = portal_of(request).mailer
    person_id = int(request.path_params["person_id"])
    return await _form_step(
        request, person, lambda c, by: procedure.verify_identity(c, mailer, by, person_id),
        lambda done: "Identity verified; " + ", ".join(m.subject for m in done.mails[1:])
        if len(done.mails) > 1 else "Identity verified.",
        max_fields=16,
    )  # fmt: skip


@signed_in
async def decide_account(request: Request, person: Who) -> Response:
    form = await request.form(max_fields=5)
    approve, reason = form.get("decision") == "approve", str(form.get("reason", ""))
    portal = portal_of(request)
    request_id = request.path_params["request_id"]
    return await _form_step(
        request, person, lambda c, by: procedure.decide_account(
            c, portal.mailer, by, request_id, approve, reason, portal.settings.registry_id),
        lambda done: f"Account {done.result} opened." if approve else f"{request_id} rejected.",
        max_fields=5,
    )  # fmt: skip


@signed_in
async def new_account(request: Request, person: Who) -> Response:
    if request.method == "GET":
        return page(request, "account_new.html", kinds=sorted(procedure.ACCOUNT_KINDS))
    form = await posted(request, max_fields=10)
    wanted = procedure.AccountWanted(
        str(form.get("account_type", "")), form.get("ars") == "yes", str(form.get("holder", "")),
        (str(form.get("representative_name", "")), str(form.get("representative_email", ""))),
    )  # fmt: skip
    portal = portal_of(request)
    try:
        done = await portal.run(lambda c: procedure.request_account(
            c, portal.mailer, person, wanted, portal.settings.secretariat))  # fmt: skip
    except Refused as error:
        return refused(request, "account_new.html", error, kinds=sorted(procedure.ACCOUNT_KINDS))
    warning = await mailed(request, done)
    return page(request, "message.html", warning=warning, message=(
        f"Account request {done.result} sent to the secretariat."))  # fmt: skip


async def access(request: Request) -> Response:
    """Anyone may ask for access to a Party's open section; its administrators decide."""
    if request.method == "GET":
        return page(request, "access.html")
    form = await posted(request, max_fields=5)
    fields = {key: str(form.get(key, "")) for key in ("name", "email", "party")}
    portal = portal_of(request)
    try:
        done = await portal.run(lambda c: procedure.request_access(
            c, portal.mailer, fields["name"], fields["email"], fields["party"],
            portal.settings.public_url))  # fmt: skip
    except Refused as error:
        return refused(request, "access.html", error, **fields)
    warning = await mailed(request, done)
    return page(request, "message.html", warning=warning, message=(
        f"Access request {done.result} sent to the section's administrators."))  # fmt: skip


@signed_in
async def decide_access(request: Request, person: Who) -> Response:
    form = await request.form(max_fields=3)
    request_id, approve = request.path_params["request_id"], form.get("decision") == "approve"
    portal = portal_of(request)
    said = "approved" if approve else "rejected"
    return await _form_step(
        request, person, lambda c, by: procedure.decide_access(
            c, portal.mailer, by, request_id, approve, portal.settings.public_url),
        lambda done: f"{request_id} {said}.",
        max_fields=3,
    )  # fmt: skip


@signed_in
async def decide(request: Request, person: Who) -> Response:
    form = await posted(request, max_fields=5)
    request_id = request.path_params["request_id"]
    valid, reason = form.get("decision") == "validate", str(form.get("reason", ""))
    portal = portal_of(request)
    hours = timedelta(hours=portal.settings.upload_link_hours)
    try:
        done = await portal.run(lambda c: procedure.decide(
            c, portal.mailer, person, request_id, valid, reason, portal.settings.public_url,
            hours))  # fmt: skip
    except Refused as error:
        listed = await portal.run(sections.list_requests)
        return refused(request, "secretariat.html", error, requests=listed)
    warning = await mailed(request, done)
    said = "validated: each administrator was sent a private upload link" if valid else \
        "rejected: each administrator was told why"  # fmt: skip
    return page(request, "message.html", message=f"{request_id} {said}.", warning=warning)


@signed_in
async def open_section(request: Request, person: Who) -> Response:
    request_id = request.path_params["request_id"]
    portal = portal_of(request)
    settings = portal.settings
    return await _form_step(
        request, person, lambda c, by: procedure.open_provisionally(
            c, portal.mailer, by, request_id, settings.documents_folder, settings.public_url),
        lambda done: f"The section of {done.result} is open, provisionally; the Letter of "
        "Acknowledgement was issued and the administrators and focal points told.",
        max_fields=2,
    )  # fmt: skip


@signed_in
async def letter(request: Request, person: Who) -> Response:
    request_id = request.path_params["request_id"]
    found = await portal_of(request).run(lambda c: _letter_path(c, person, request_id))
    if found is None:
        return refused(request, "message.html", Forbidden(
            f"there is no letter for {request_id} that you may see"))  # fmt: skip
    path = portal_of(request).settings.documents_folder / found
    return FileResponse(path, media_type="application/pdf",
                        filename=f"Letter-of-Acknowledgement-{request_id}.pdf")  # fmt: skip


def _letter_path(connection: Connection, person: Who, request_id: str) -> Path | None:
    listed = sections.list_requests(connection, request_id=request_id)
    if not listed or not person.may_see(request_id, listed[0].party):
        return None
    return procedure.letter_of(connection, request_id)


async def upload_link(request: Request) -> Response:
    """A private link from the validation e-mail: used once, it leads to the passcode that
    proves its reader holds the administrator's address, then to the upload page. Opening it
    changes nothing (mail scanners open links): the button on it uses it up."""
    token = request.path_params["token"]
    portal = portal_of(request)
    use = request.method == "POST"
    if use:
        await posted(request, max_fields=2)
    try:
        request_id, email = await portal.run(lambda c: procedure.upload_link(c, token, use))
    except Refused as error:
        return page(request, "message.html", 410, error=str(error))
    if not use:
        return page(request, "upload_link.html", email=email, request_id=request_id)
    lifetime = timedelta(minutes=portal.settings.passcode_minutes)
    done = await portal.run(lambda c: procedure.ask_passcode(
        c, portal.mailer, email, portal.settings.secretariat, lifetime))  # fmt: skip
    request.session.clear()
    request.session.update({"pending": email, "next": f"/requests/{request_id}/documents"})
    warning = await mailed(request, done)
    return page(request, "passcode.html", email=email, warning=warning)


@signed_in
async def documents(request: Request, person: Who) -> Response:
    request_id = request.path_params["request_id"]
    if not (person.administers(request_id) or person.secretariat):
        return refused(request, "message.html", Forbidden(
            f"only the administrators of {request_id} upload its documents"))  # fmt: skip
    if request.method == "GET":
        return await _documents_page(request, person, request_id)
    listed = procedure.catalogue()
    length = int(request.headers.get("content-length") or 0)
    if length > listed.max_bytes + 65_536:  # refused before the body is read
        return await _documents_page(request, person, request_id, 413, TooLarge(
            f"the file is larger than {listed.max_bytes // 2**20} MiB"))  # fmt: skip
    form = await posted(request, max_files=1, max_fields=4)
    upload = await _upload(form, listed.max_bytes)
    folder = portal_of(request).settings.documents_folder
    try:
        await portal_of(request).run(
            lambda c: procedure.add_document(c, person, request_id, upload, folder)
        )
    except Refused as error:
        status = 413 if isinstance(error, TooLarge) else 400
        return await _documents_page(request, person, request_id, status, error)
    return RedirectResponse(f"/requests/{request_id}", status_code=303)


async def _upload(form: FormData, max_bytes: int) -> Upload:
    sent = form.get("file")
    kind = str(form.get("kind", ""))
    if not isinstance(sent, UploadFile):
        return Upload(kind, "", "", b"")
    data = await sent.read(max_bytes + 1)  # one byte more than allowed shows it is too large
    return Upload(kind, Path(sent.filename or "").name, sent.content_type or "", data)


async def _documents_page(
    request: Request, person: Who, request_id: str, status: int = 200,
    error: Refused | None = None,
) -> Response:  # fmt: skip
    found = await portal_of(request).run(lambda c: _request_page(c, person, request_id))
    if found is None:
        return refused(request, "message.html", Forbidden(f"no request {request_id}"))
    listed = procedure.catalogue()
    return page(request, "documents.html", status, error=str(error) if error else "",
                types=", ".join(sorted(listed.types.values())),
                max_mib=listed.max_bytes // 2**20, **found)  # fmt: skip


# --- the application -----------------------------------------------------------------------


class SecurityHeaders:
    """Pages never framed, never cached, and links never sent on as Referer (the upload
    links are secrets); scripts and styles only from the portal itself."""

    HEADERS: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """A request body is refused before it is read when it is larger than the largest
    upload allows (413), or when its length is not declared (411): browsers declare it, and
    a body of unknown length could fill the disk the form parser spools to."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD"}:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        status = 411 if declared is None else 413 if int(declared) > self.max_bytes else 0
        if not status:
            await self.app(scope, receive, send)
            return
        text = b"Length Required" if status == 411 else b"Request Entity Too Large"
        headers = [(b"content-type", b"text/plain"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": text})


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return page(request, "message.html", error.status_code, error=error.detail)


def build_app(portal: Portal) -> Starlette:
    settings = portal.settings
    routes = [
        Route("/", home),
        Route("/sign-in", sign_in, methods=["GET", "POST"]),
        Route("/sign-in/passcode", passcode, methods=["GET", "POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/requests/new", new_request, methods=["GET", "POST"]),
        Route("/requests/{request_id}", show_request),
        Route("/requests/{request_id}/documents", documents, methods=["GET", "POST"]),
        Route("/secretariat", secretariat),
        Route("/secretariat/requests/{request_id}/decision", decide, methods=["POST"]),
        Route("/secretariat/requests/{request_id}/open", open_section, methods=["POST"]),
        Route("/secretariat/people/{person_id:int}/verify", verify_person, methods=["POST"]),
        Route("/secretariat/paper", paper_request, methods=["POST"]),
        Route("/secretariat/accounts/{request_id}/decision", decide_account, methods=["POST"]),
        Route("/accounts/new", new_account, methods=["GET", "POST"]),
        Route("/access", access, methods=["GET", "POST"]),
        Route("/access/{request_id}/decision", decide_access, methods=["POST"]),
        Route("/requests/{request_id}/letter.pdf", letter),
        Route("/upload/{token}", upload_link, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    # Twice the largest upload: a file a little too large still gets the upload page's answer.
    largest = 2 * procedure.catalogue().max_bytes
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, max_bytes=largest),
        Middleware(
            SessionMiddleware,
            secret_key=settings.secret_key,
            session_cookie="a6_portal",
            max_age=settings.session_hours * 3600,
            same_site="strict",
            https_only=settings.cookie_secure,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: http_error})  # fmt: skip
    app.state.portal = portal
    return app
