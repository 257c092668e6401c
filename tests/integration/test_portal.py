"""The Party-section portal over HTTP (Starlette's test client against the real app), its
e-mails through a real SMTP server (aiosmtpd) read back as received, on SQLite and on
PostgreSQL:
the opening procedure from the electronic form to the uploaded documents, and each refusal
changing nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, Engine
from starlette.testclient import TestClient

from article6.codes import Code, Refusal
from article6.node import store as node_store
from article6.unit import Unit
from demo.mailbox import LocalSmtp, link_in, passcode_in
from demo.network import free_port
from demo.portal import csrf_in as csrf
from international_registry import sections
from international_registry.portal import store
from international_registry.portal.app import Portal, PortalSettings, build_app
from international_registry.portal.mail import SmtpSettings
from international_registry.rules import SectionRules
from international_registry.schema import migrate

T = TypeVar("T")
OFFICER = "officer@unfccc.example"
FOCAL = "focal@sgp.example"
PDF = b"%PDF-1.7\n% a nomination letter\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@dataclass
class World:
    engine: Engine
    smtp: LocalSmtp
    app: Any
    folder: Path

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="http://portal.test")

    def read(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as connection:
            return work(connection)


@pytest.fixture
def world(tmp_path: Path, registry_database_url: str) -> Iterator[World]:
    """The portal on the registry's database (SQLite, and PostgreSQL), mailing a real local
    SMTP server."""
    engine = node_store.open_database(registry_database_url, migrate)
    with engine.begin() as connection:
        store.put_focal_point(connection, store.FocalPointEntry(
            FOCAL, "SGP", "Tan Wei", store.FocalPointKind.NATIONAL))  # fmt: skip
        store.put_focal_point(connection, store.FocalPointEntry(
            "focal@gha.example", "GHA", "Ama Mensah", store.FocalPointKind.NATIONAL))  # fmt: skip

    async def run(work: Callable[[Unit], T]) -> T:
        def apply() -> T:
            with engine.begin() as connection:
                return work(Unit(connection))

        return await asyncio.to_thread(apply)

    port = free_port()
    with LocalSmtp(tmp_path / "mail", port) as smtp:
        settings = PortalSettings(
            listen="127.0.0.1:0", public_url="http://portal.test", secret_key="k" * 32,
            documents_folder=tmp_path / "documents", secretariat=frozenset({OFFICER}),
            smtp=SmtpSettings("127.0.0.1", port, "registry@unfccc.example"), cookie_secure=False,
        )  # fmt: skip
        yield World(engine, smtp, build_app(Portal(settings, run)), tmp_path)
    engine.dispose()


def sign_in(world: World, email: str, client: TestClient | None = None) -> TestClient:
    client = client or world.client()
    token = csrf(client.get("/sign-in").text)
    reply = client.post("/sign-in", data={"csrf": token, "email": email})
    assert reply.status_code == 200, reply.text
    code = passcode_in(world.smtp.wait_for(email, "passcode"))
    reply = client.post("/sign-in/passcode", data={"csrf": csrf(reply.text), "code": code})
    assert reply.status_code == 200, reply.text
    assert email in reply.text
    return client


def submit(world: World, client: TestClient, **fields: str) -> Any:
    token = csrf(client.get("/requests/new").text)
    return client.post("/requests/new", data={"csrf": token, **fields})


ADMINS = {"name0": "Lee Min", "email0": "lee@sgp.example",
          "name1": "Nur Aisyah", "email1": "nur@sgp.example"}  # fmt: skip


def validated_request(world: World) -> str:
    reply = submit(world, sign_in(world, FOCAL), **ADMINS)
    request_id = re.search(r'id="request-id">([^<]+)<', reply.text)
    assert request_id, reply.text
    officer = sign_in(world, OFFICER)
    queue = officer.get("/secretariat").text
    decided = officer.post(f"/secretariat/requests/{request_id.group(1)}/decision",
                           data={"csrf": csrf(queue), "decision": "validate"})  # fmt: skip
    assert decided.status_code == 200, decided.text
    return request_id.group(1)


def test_the_opening_procedure_from_the_form_to_the_documents(world: World) -> None:
    focal = sign_in(world, FOCAL)
    reply = submit(world, focal, **ADMINS)
    assert reply.status_code == 200
    request_id = re.search(r'id="request-id">(REQ-\d{4})<', reply.text)
    assert request_id
    request_id_text = request_id.group(1)
    # Step 2: each administrator is acknowledged, with the Request ID.
    for email in ("lee@sgp.example", "nur@sgp.example"):
        ack = world.smtp.wait_for(email, "received")
        assert request_id_text in ack.subject
        assert "Tan Wei, national focal point" in ack.body
    # Step 3 and 4: the secretariat validates; each administrator gets a link of their own.
    officer = sign_in(world, OFFICER)
    queue = officer.get("/secretariat")
    assert request_id_text in queue.text
    assert "received" in queue.text
    officer.post(f"/secretariat/requests/{request_id_text}/decision",
                 data={"csrf": csrf(queue.text), "decision": "validate"})  # fmt: skip
    link = link_in(world.smtp.wait_for("lee@sgp.example", "validated"))
    assert link != link_in(world.smtp.wait_for("nur@sgp.example", "validated"))
    # Step 5: the link, then a passcode to that address, then the upload page.
    admin = world.client()
    path = link.removeprefix("http://portal.test")
    reply = admin.get(path)
    assert reply.status_code == 200
    assert "lee@sgp.example" in reply.text
    reply = admin.post(path, data={"csrf": csrf(reply.text)})
    code = passcode_in(world.smtp.wait_for("lee@sgp.example", "passcode"))
    reply = admin.post("/sign-in/passcode", data={"csrf": csrf(reply.text), "code": code})
    assert reply.url.path == f"/requests/{request_id_text}/documents"
    # Step 6: the documents, into the Party's folder with their SHA-256.
    files = (("nomination", "nomination.pdf", PDF, "application/pdf"),
             ("identity", "passport.png", PNG, "image/png"))  # fmt: skip
    for kind, name, content, kind_of in files:
        token = csrf(admin.get(f"/requests/{request_id_text}/documents").text)
        reply = admin.post(f"/requests/{request_id_text}/documents",
                           data={"csrf": token, "kind": kind},
                           files={"file": (name, content, kind_of)})  # fmt: skip
        assert reply.status_code == 200
        assert reply.url.path == f"/requests/{request_id_text}"
    assert "Still needed" not in reply.text
    assert "nomination.pdf" in reply.text
    stored = sorted((world.folder / "documents" / "SGP" / request_id_text).iterdir())
    assert [path.read_bytes() for path in stored] in ([PDF, PNG], [PNG, PDF])
    trail = world.read(lambda c: [e["action"] for e in store.audit_entries(c, request_id_text)])
    assert trail == ["request.submitted", "request.validated", "document.uploaded",
                     "document.uploaded"]  # fmt: skip


def unchanged(world: World) -> tuple[int, ...]:
    return world.read(lambda c: tuple(store.count(c, table) for table in (
        sections.opening_requests, store.people, store.documents, store.audit)))  # fmt: skip


def test_an_address_not_in_the_directory_cannot_sign_in(world: World) -> None:
    client = world.client()
    reply = client.post("/sign-in", data={"csrf": csrf(client.get("/sign-in").text),
                                          "email": "someone@else.example"})  # fmt: skip
    assert reply.status_code == 400
    assert "not known to the portal" in reply.text
    assert world.smtp.messages() == []


def test_a_wrong_passcode_counts_and_too_many_end_it(world: World) -> None:
    client = world.client()
    reply = client.post("/sign-in", data={"csrf": csrf(client.get("/sign-in").text),
                                          "email": FOCAL})  # fmt: skip
    code = passcode_in(world.smtp.wait_for(FOCAL, "passcode"))
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        reply = client.post("/sign-in/passcode", data={"csrf": csrf(reply.text), "code": wrong})
        assert reply.status_code == 400
        assert "wrong passcode" in reply.text
    reply = client.post("/sign-in/passcode", data={"csrf": csrf(reply.text), "code": code})
    assert reply.status_code == 400
    assert "tried too often" in reply.text
    assert "Signed in" not in client.get("/").text


def test_forms_without_their_token_are_refused(world: World) -> None:
    client = sign_in(world, FOCAL)
    before = unchanged(world)
    reply = client.post("/requests/new", data={**ADMINS, "csrf": "forged"})
    assert reply.status_code == 403
    assert "form has expired" in reply.text
    assert unchanged(world) == before


def test_only_focal_points_submit_and_only_the_secretariat_decides(world: World) -> None:
    request_id = validated_request(world)
    admin = sign_in(world, "lee@sgp.example")
    assert admin.get("/requests/new").status_code == 403
    before = unchanged(world)
    reply = admin.post(f"/secretariat/requests/{request_id}/decision",
                       data={"csrf": csrf(admin.get("/").text), "decision": "reject",
                             "reason": "no"})  # fmt: skip
    assert reply.status_code == 403
    assert unchanged(world) == before


def test_another_partys_focal_point_sees_neither_the_request_nor_its_documents(
    world: World,
) -> None:
    request_id = validated_request(world)
    other = sign_in(world, "focal@gha.example")
    assert other.get(f"/requests/{request_id}").status_code == 403
    assert other.get(f"/requests/{request_id}/documents").status_code == 403
    assert request_id not in other.get("/").text


def test_a_used_or_unknown_upload_link_is_refused(world: World) -> None:
    validated_request(world)
    link = link_in(world.smtp.wait_for("lee@sgp.example", "validated"))
    path = link.removeprefix("http://portal.test")
    client = world.client()
    # Opening it (as a mail scanner would) uses nothing up; its button does.
    assert client.get(path).status_code == 200
    opened = client.get(path)
    assert opened.status_code == 200
    assert client.post(path, data={"csrf": csrf(opened.text)}).status_code == 200
    token = csrf(client.get("/sign-in").text)  # the session's token once the link is used
    for again in (client.get(path), client.post(path, data={"csrf": token})):
        assert again.status_code == 410
        assert "used already or has expired" in again.text
    assert world.client().get("/upload/not-a-link").status_code == 410


def test_files_of_the_wrong_type_or_too_large_are_refused(world: World) -> None:
    request_id = validated_request(world)
    admin = sign_in(world, "lee@sgp.example")
    page = f"/requests/{request_id}/documents"
    before = unchanged(world)
    for content, kind_of, status, said in (
        (b"MZ\x90\0 an executable", "application/pdf", 400, "not of an allowed type"),
        (b"hello", "text/plain", 400, "not of an allowed type"),
        (b"%PDF-" + b"0" * (10 * 2**20), "application/pdf", 413, "larger than 10 MiB"),
    ):
        reply = admin.post(page, data={"csrf": csrf(admin.get(page).text), "kind": "nomination"},
                           files={"file": ("f.pdf", content, kind_of)})  # fmt: skip
        assert (reply.status_code, said in reply.text) == (status, True), reply.text
    assert unchanged(world) == before
    assert not (world.folder / "documents" / "SGP").exists()


def test_a_rejection_tells_each_administrator_why(world: World) -> None:
    reply = submit(world, sign_in(world, FOCAL), **ADMINS)
    request_id = re.search(r'id="request-id">([^<]+)<', reply.text)
    assert request_id
    officer = sign_in(world, OFFICER)
    page = f"/secretariat/requests/{request_id.group(1)}/decision"
    token = csrf(officer.get("/secretariat").text)
    assert officer.post(page, data={"csrf": token, "decision": "reject"}).status_code == 400
    officer.post(page, data={"csrf": token, "decision": "reject",
                             "reason": "the nomination letter is unsigned"})  # fmt: skip
    said = world.smtp.wait_for("nur@sgp.example", "not validated")
    assert "the nomination letter is unsigned" in said.body


def upload_all(world: World, request_id: str) -> TestClient:
    admin = sign_in(world, "lee@sgp.example")
    page = f"/requests/{request_id}/documents"
    for kind, content, kind_of in (("nomination", PDF, "application/pdf"),
                                   ("identity", PNG, "image/png")):  # fmt: skip
        admin.post(page, data={"csrf": csrf(admin.get(page).text), "kind": kind},
                   files={"file": (f"{kind}.bin", content, kind_of)})  # fmt: skip
    return admin


def test_the_section_opens_provisionally_with_its_letter(world: World) -> None:
    request_id = validated_request(world)
    officer = sign_in(world, OFFICER)
    opening = f"/secretariat/requests/{request_id}/open"
    early = officer.post(opening, data={"csrf": csrf(officer.get("/").text)})
    assert early.status_code == 400
    assert "still needs: Identity document" in early.text
    assert world.read(lambda c: sections.section_status(c, "SGP")) is None
    admin = upload_all(world, request_id)
    opened = officer.post(opening, data={"csrf": csrf(officer.get("/").text)})
    assert opened.status_code == 200, opened.text
    assert (
        world.read(lambda c: sections.section_status(c, "SGP"))
        is sections.SectionStatus.PROVISIONAL
    )
    told = world.smtp.wait_for(FOCAL, "is open (provisionally)")
    assert f"/requests/{request_id}/letter.pdf" in told.body
    assert "lee@sgp.example" in told.to
    pdf = admin.get(f"/requests/{request_id}/letter.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert "provisional" in admin.get(f"/requests/{request_id}").text
    other = sign_in(world, "focal@gha.example")
    assert other.get(f"/requests/{request_id}/letter.pdf").status_code == 403
    again = officer.post(opening, data={"csrf": csrf(officer.get("/").text)})
    assert again.status_code == 400
    assert "already open" in again.text


def opened_section(world: World) -> tuple[str, TestClient, TestClient]:
    """SGP's section open (provisionally): its Request ID, an administrator, the officer."""
    request_id = validated_request(world)
    admin = upload_all(world, request_id)
    officer = sign_in(world, OFFICER)
    officer.post(f"/secretariat/requests/{request_id}/open",
                 data={"csrf": csrf(officer.get("/").text)})  # fmt: skip
    return request_id, admin, officer


def ask_account(admin: TestClient, **fields: str) -> str:
    reply = admin.post("/accounts/new", data={"csrf": csrf(admin.get("/accounts/new").text),
                                              "account_type": "holding", **fields})  # fmt: skip
    found = re.search(r"(ACR-\d{4})", reply.text)
    assert found, reply.text
    return found.group(1)


def person_id(world: World, email: str) -> int:
    found = world.read(lambda c: [p.id for p in store.unverified_people(c) if p.email == email])
    assert found, email
    return found[0]


def test_identity_verification_lifts_the_section_then_each_account(world: World) -> None:
    _, admin, officer = opened_section(world)
    entity = ask_account(admin, holder="Acme Carbon Ltd", representative_name="Sam Tan",
                         representative_email="sam@acme.example")  # fmt: skip
    assert OFFICER in world.smtp.wait_for(OFFICER, entity).to
    party_own = ask_account(admin)
    accounts = []
    for asked in (entity, party_own):
        token = csrf(officer.get("/secretariat").text)
        reply = officer.post(f"/secretariat/accounts/{asked}/decision",
                             data={"csrf": token, "decision": "approve"})  # fmt: skip
        found = re.search(r"Account (UNIR-\d+-\d{2}) opened", reply.text)
        assert found, reply.text
        accounts.append(found.group(1))
    assert "provisional until the identity" in world.smtp.wait_for("sam@acme.example",
                                                                   "approved").body  # fmt: skip
    rules = SectionRules("UNIR")

    def allowed(account: str) -> bool:
        """Whether the account may transfer; a refusal must be the provisional one."""
        code = None
        try:
            world.read(lambda c: rules._allow(c, "SGP", "transfer", account))
        except Refusal as refusal:
            code = refusal.code
        assert code in (None, Code.SECTION_PROVISIONAL)
        return code is None

    assert (allowed(accounts[0]), allowed(accounts[1])) == (False, False)
    for email in ("lee@sgp.example", "nur@sgp.example"):
        token = csrf(officer.get("/secretariat").text)
        officer.post(f"/secretariat/people/{person_id(world, email)}/verify",
                     data={"csrf": token})  # fmt: skip
    world.smtp.wait_for("lee@sgp.example", "is verified")
    status = world.read(lambda c: sections.section_status(c, "SGP"))
    assert status is sections.SectionStatus.VERIFIED
    # The Party's own account is verified with its section; the entity's waits for Sam.
    assert (allowed(accounts[0]), allowed(accounts[1])) == (False, True)
    token = csrf(officer.get("/secretariat").text)
    officer.post(f"/secretariat/people/{person_id(world, 'sam@acme.example')}/verify",
                 data={"csrf": token})  # fmt: skip
    world.smtp.wait_for("sam@acme.example", f"Account {accounts[0]} is verified")
    assert allowed(accounts[0])


def test_an_additional_user_asks_for_access_and_an_administrator_gives_it(world: World) -> None:
    request_id, admin, _ = opened_section(world)
    visitor = world.client()
    fields = {"name": "Ong Bee", "email": "ong@sgp.example", "party": "SGP"}
    reply = visitor.post("/access", data={"csrf": csrf(visitor.get("/access").text), **fields})
    assert reply.status_code == 200, reply.text
    asked = re.search(r"(ACC-\d{4})", reply.text)
    assert asked
    world.smtp.wait_for("ong@sgp.example", "received")
    assert "Ong Bee" in world.smtp.wait_for("lee@sgp.example", "requests access").subject
    again = visitor.post("/access", data={"csrf": csrf(visitor.get("/access").text), **fields})
    assert again.status_code == 400
    nowhere = visitor.post("/access", data={"csrf": csrf(visitor.get("/access").text),
                                            **fields, "party": "FRA"})  # fmt: skip
    assert nowhere.status_code == 400
    assert "no open section" in nowhere.text
    home = admin.get("/")
    assert asked.group(1) in home.text
    admin.post(f"/access/{asked.group(1)}/decision",
               data={"csrf": csrf(home.text), "decision": "approve"})  # fmt: skip
    assert "Sign in" in world.smtp.wait_for("ong@sgp.example", "approved").body
    user = sign_in(world, "ong@sgp.example")
    assert user.get(f"/requests/{request_id}").status_code == 200
    assert user.post(f"/access/{asked.group(1)}/decision",
                     data={"csrf": csrf(user.get("/").text), "decision": "reject"}
                     ).status_code == 400  # fmt: skip


def test_the_secretariat_enters_a_paper_form_and_the_submitter_is_confirmed(world: World) -> None:
    officer = sign_in(world, OFFICER)
    fields = {"party": "BRB", "submitter_name": "Kemar Clarke",
              "submitter_email": "kemar@brb.example", "kind": "national",
              "name0": "Dana Best", "email0": "dana@brb.example"}  # fmt: skip
    token = csrf(officer.get("/secretariat").text)
    reply = officer.post("/secretariat/paper", data={"csrf": token, **fields})
    found = re.search(r"entered as (REQ-\d{4})", reply.text)
    assert found, reply.text
    confirmation = world.smtp.wait_for("kemar@brb.example", found.group(1))
    assert "paper form" in confirmation.subject
    assert [m.to for m in world.smtp.messages() if found.group(1) in m.subject] == [
        "kemar@brb.example"
    ]
    bad = officer.post("/secretariat/paper", data={
        "csrf": csrf(officer.get("/secretariat").text), **fields, "party": "B1"})  # fmt: skip
    assert bad.status_code == 400
    focal = sign_in(world, FOCAL)
    assert focal.post("/secretariat/paper", data={"csrf": csrf(focal.get("/").text),
                                                  **fields}).status_code == 403  # fmt: skip


def test_an_expired_passcode_or_upload_link_is_refused(world: World) -> None:
    validated_request(world)
    link = link_in(world.smtp.wait_for("lee@sgp.example", "validated"))
    past = store.now() - timedelta(seconds=1)
    world.read(lambda c: c.execute(store.upload_links.update().values(expires_at=past)))
    expired = world.client().get(link.removeprefix("http://portal.test"))
    assert expired.status_code == 410
    assert "has expired" in expired.text
    client = world.client()
    reply = client.post("/sign-in", data={"csrf": csrf(client.get("/sign-in").text),
                                          "email": "nur@sgp.example"})  # fmt: skip
    code = passcode_in(world.smtp.wait_for("nur@sgp.example", "passcode"))
    world.read(lambda c: c.execute(store.passcodes.update().values(expires_at=past)))
    reply = client.post("/sign-in/passcode", data={"csrf": csrf(reply.text), "code": code})
    assert reply.status_code == 400
    assert "expired" in reply.text


def test_bodies_of_unknown_or_excessive_length_are_refused_unread(world: World) -> None:
    client = world.client()

    def chunks() -> Iterator[bytes]:
        yield b"csrf=x&email=a%40b.example"

    assert client.post("/sign-in", content=chunks()).status_code == 411
    huge = client.post("/sign-in", content=b"x", headers={"content-length": str(2**40)})
    assert huge.status_code == 413
