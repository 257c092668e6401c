"""The demo's walk through the Party-section portal over HTTP, as the people opening a
section live it: Kenya's national focal point signs in with a passcode and submits the
electronic opening request; the administrators get the acknowledgement; the secretariat
validates; an administrator follows the private link, confirms the passcode and uploads the
supporting documents. Every e-mail is read from the local SMTP server."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

from demo.mailbox import LocalSmtp, Received, link_in, passcode_in
from demo.network import INTERNATIONAL, SECRETARIAT, Network

FOCAL = ("Wanjiru Kamau", "focal.point@ken.example")
ADMINISTRATORS = (
    ("Otieno Odhiambo", "otieno@ken.example"),
    ("Achieng Njeri", "achieng@ken.example"),
)
NOMINATION = b"%PDF-1.4\n% the focal point's signed nomination of the administrators\n%%EOF\n"
IDENTITY = b"\x89PNG\r\n\x1a\n" + b"\0" * 32  # a scan of an identity document


@dataclass(frozen=True)
class Page:
    status: int
    url: str
    text: str

    def csrf(self) -> str:
        return csrf_in(self.text)


def csrf_in(page: str) -> str:
    """The CSRF token a portal page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


class Browser:
    """A person's browser: cookies kept, redirects followed, forms posted."""

    def __init__(self, base: str) -> None:
        self.base = base
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def open(self, path: str, data: bytes | None = None, content_type: str = "") -> Page:
        request = urllib.request.Request(self.base + path, data=data)  # noqa: S310 (our portal)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with self.opener.open(request, timeout=30) as reply:
                return Page(reply.status, reply.url, reply.read().decode())
        except urllib.error.HTTPError as error:
            return Page(error.code, error.url or "", error.read().decode())

    def get(self, path: str) -> Page:
        return self.open(path)

    def download(self, path: str) -> bytes:
        request = urllib.request.Request(self.base + path)  # noqa: S310 (our portal)
        with self.opener.open(request, timeout=30) as reply:
            data: bytes = reply.read()
            return data

    def post(self, path: str, fields: dict[str, str]) -> Page:
        return self.open(path, urllib.parse.urlencode(fields).encode(),
                         "application/x-www-form-urlencoded")  # fmt: skip

    def upload(self, path: str, fields: dict[str, str], file: tuple[str, str, bytes]) -> Page:
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                 f"{value}\r\n".encode() for name, value in fields.items()]  # fmt: skip
        name, kind, content = file
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                     f'filename="{name}"\r\nContent-Type: {kind}\r\n\r\n'.encode()
                     + content + b"\r\n")  # fmt: skip
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.open(path, body, f"multipart/form-data; boundary={boundary}")


def sign_in(browser: Browser, smtp: LocalSmtp, email: str) -> Received:
    page = browser.post("/sign-in", {"csrf": browser.get("/sign-in").csrf(), "email": email})
    assert page.status == 200, page.text
    mail = smtp.wait_for(email, "passcode")
    page = browser.post("/sign-in/passcode", {"csrf": page.csrf(), "code": passcode_in(mail)})
    assert page.status == 200, page.text
    return mail


def show(mail: Received) -> None:
    print(f"    To: {mail.to}\n    Subject: {mail.subject}")
    for line in mail.body.strip().splitlines():
        print(f"    | {line}")


def run_portal_scenario(network: Network, smtp: LocalSmtp) -> str:
    """Walk the procedure; return the Request ID."""
    url = network.portal_url
    print(f"\nThe Party-section portal of the international registry: {url}")
    print("  (its e-mails go to a local SMTP server; the demo reads them as the recipients would)")
    network.registry_cli(INTERNATIONAL, "focal-point", "--party", "KEN", "--email", FOCAL[1],
                         "--name", FOCAL[0])  # fmt: skip
    print(f"- The secretariat lists Kenya's national focal point, {FOCAL[0]} <{FOCAL[1]}>;")
    print("  she signs in with a one-time passcode sent to her address:")
    focal = Browser(url)
    show(sign_in(focal, smtp, FOCAL[1]))
    form = focal.get("/requests/new")
    fields = {"csrf": form.csrf()}
    for i, (name, email) in enumerate(ADMINISTRATORS):
        fields |= {f"name{i}": name, f"email{i}": email}
    page = focal.post("/requests/new", fields)
    found = re.search(r'id="request-id">([^<]+)<', page.text)
    assert found, page.text
    request_id = found.group(1)
    print(f"- She submits the electronic Party Section Opening Request: {request_id}. "
          "Each administrator is acknowledged:")  # fmt: skip
    show(smtp.wait_for(ADMINISTRATORS[0][1], "received"))
    officer = Browser(url)
    sign_in(officer, smtp, SECRETARIAT)
    queue = officer.get("/secretariat")
    officer.post(f"/secretariat/requests/{request_id}/decision",
                 {"csrf": queue.csrf(), "decision": "validate"})  # fmt: skip
    print(f"- The secretariat ({SECRETARIAT}) validates it; each administrator gets a private "
          "upload link:")  # fmt: skip
    mail = smtp.wait_for(ADMINISTRATORS[0][1], "validated")
    show(mail)
    admin = Browser(url)
    link = link_in(mail).removeprefix(url)
    page = admin.post(link, {"csrf": admin.get(link).csrf()})
    code = passcode_in(smtp.wait_for(ADMINISTRATORS[0][1], "passcode"))
    page = admin.post("/sign-in/passcode", {"csrf": page.csrf(), "code": code})
    print(f"- {ADMINISTRATORS[0][0]} follows it, confirms the passcode sent to "
          f"{ADMINISTRATORS[0][1]}, and uploads the supporting documents:")  # fmt: skip
    for kind, file in (("nomination", ("nomination.pdf", "application/pdf", NOMINATION)),
                       ("identity", ("identity.png", "image/png", IDENTITY))):  # fmt: skip
        form = admin.get(f"/requests/{request_id}/documents")
        page = admin.upload(f"/requests/{request_id}/documents",
                            {"csrf": form.csrf(), "kind": kind}, file)  # fmt: skip
        assert page.status == 200, page.text
    for row in re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>(\d+) bytes</td>"
                          r"<td><code>([0-9a-f]{64})</code>", page.text):  # fmt: skip
        print(f"    {row[1]:<15} {row[2]:>5} bytes  SHA-256 {row[3][:16]}…  ({row[0]})")
    wrong = admin.upload(f"/requests/{request_id}/documents",
                         {"csrf": form.csrf(), "kind": "other"},
                         ("notes.exe", "application/pdf", b"MZ\x90\x00"))  # fmt: skip
    print(f"  A file that is not what it claims to be is refused ({wrong.status}).")
    page = officer.get(f"/requests/{request_id}")
    officer.post(f"/secretariat/requests/{request_id}/open", {"csrf": page.csrf()})
    print("- The secretariat opens the section provisionally and issues the Letter of "
          "Acknowledgement:")  # fmt: skip
    show(smtp.wait_for(FOCAL[1], "is open (provisionally)"))
    letter = network.folder / f"KEN-{request_id}-Letter-of-Acknowledgement.pdf"
    letter.write_bytes(admin.download(f"/requests/{request_id}/letter.pdf"))
    size = letter.stat().st_size
    print(f"  The letter, as the administrator downloads it: {letter} ({size:,} bytes)")
    run_accounts_and_verification(network, smtp, admin, officer, request_id)
    stranger = Browser(url)
    refused = stranger.post("/sign-in", {"csrf": stranger.get("/sign-in").csrf(),
                                         "email": "someone@elsewhere.example"})  # fmt: skip
    print(f"  An address the portal does not know cannot sign in ({refused.status}).")
    return request_id


def run_accounts_and_verification(
    network: Network, smtp: LocalSmtp, admin: Browser, officer: Browser, request_id: str
) -> None:
    """An account for an authorized entity, then identity verification: the section, then
    the account, lose their provisional status."""
    form = admin.get("/accounts/new")
    page = admin.post("/accounts/new", {
        "csrf": form.csrf(), "account_type": "holding", "ars": "no",
        "holder": "Nairobi Clean Cookstoves Ltd", "representative_name": "Halima Yusuf",
        "representative_email": "halima@cookstoves.example",
    })  # fmt: skip
    asked = re.search(r"(ACR-\d{4})", page.text)
    assert asked, page.text
    queue = officer.get("/secretariat")
    page = officer.post(f"/secretariat/accounts/{asked.group(1)}/decision",
                        {"csrf": queue.csrf(), "decision": "approve"})  # fmt: skip
    account = re.search(r"Account (\S+) opened", page.text)
    assert account, page.text
    print(f"- {ADMINISTRATORS[0][0]} requests an account for an entity Kenya authorized "
          f"({asked.group(1)}); the secretariat opens it, {account.group(1)}, provisional "
          "until its representative is verified:")  # fmt: skip
    show(smtp.wait_for("halima@cookstoves.example", "approved"))
    for name, _ in (*ADMINISTRATORS, ("Halima Yusuf", "halima@cookstoves.example")):
        queue = officer.get("/secretariat")
        person = re.search(rf'action="(/secretariat/people/\d+/verify)"[^<]*<input[^>]*>\s*'
                           rf"<span>{re.escape(name)}", queue.text)  # fmt: skip
        assert person, queue.text
        officer.post(person.group(1), {"csrf": queue.csrf()})
    print("- The secretariat verifies each person's identity: the section, then the account, "
          "are no longer provisional:")  # fmt: skip
    show(smtp.wait_for(ADMINISTRATORS[0][1], "is verified"))
    show(smtp.wait_for("halima@cookstoves.example", f"Account {account.group(1)} is verified"))
    status = admin.get(f"/requests/{request_id}")
    assert "verified" in status.text, status.text
