"""A real local SMTP server (aiosmtpd) whose messages land in a Maildir folder: the demo and
the tests send the portal's e-mails to it and read what it received, as a user's mail
program would."""

from __future__ import annotations

import mailbox
import re
import time
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


@dataclass(frozen=True)
class Received:
    to: str
    subject: str
    body: str


class LocalSmtp:
    """``with LocalSmtp(folder, port) as smtp:`` serves SMTP on that loopback port."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        folder.parent.mkdir(parents=True, exist_ok=True)  # Maildir makes its own folders
        self.controller = Controller(Mailbox(folder), hostname="127.0.0.1", port=port)

    def __enter__(self) -> LocalSmtp:
        self.controller.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.controller.stop()

    def messages(self) -> list[Received]:
        """Every message received so far, oldest first."""
        found = [(message.get_date(), message) for message in mailbox.Maildir(self.folder)]
        return [_received(message) for _, message in sorted(found, key=lambda item: item[0])]

    def wait_for(self, to: str, subject: str, timeout_seconds: float = 10.0) -> Received:
        """The newest message to ``to`` whose subject contains ``subject``."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            for message in reversed(self.messages()):
                if to in message.to and subject in message.subject:
                    return message
            time.sleep(0.05)
        raise TimeoutError(f"no message to {to} about {subject!r} within {timeout_seconds} s")


def _received(message: Message) -> Received:
    payload = message.get_payload(decode=True)
    body = payload.decode() if isinstance(payload, bytes) else str(message.get_payload())
    # Long headers arrive folded over lines (RFC 5322): read them as one line, as mail programs do.
    to, subject = (re.sub(r"\s*\n\s*", " ", str(message[key])) for key in ("To", "Subject"))
    return Received(to, subject, body)


def passcode_in(message: Received) -> str:
    found = re.search(r"\b(\d{6})\b", message.body)
    assert found, message.body
    return found.group(1)


def link_in(message: Received) -> str:
    found = re.search(r"(https?://\S+/upload/\S+)", message.body)
    assert found, message.body
    return found.group(1)
