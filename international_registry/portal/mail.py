"""E-mail for real: messages rendered from the templates in ``templates/mail`` and sent
through SMTP to the configured server (in the demo and the tests, a local aiosmtpd)."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import jinja2


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    starttls: bool = False
    username: str = ""
    password: str = ""  # read from the configured password file, never from the config
    timeout_seconds: float = 10.0


class MailError(Exception):
    """The SMTP server did not take a message."""


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str


class Mailer:
    def __init__(self, settings: SmtpSettings, templates: jinja2.Environment) -> None:
        self.settings = settings
        self.templates = templates

    def render(self, template: str, to: Sequence[str], **context: Any) -> Mail:
        """The message ``template`` makes: its first line is ``Subject: ...``."""
        text = self.templates.get_template(f"mail/{template}.txt").render(**context)
        first, _, body = text.partition("\n")
        assert first.startswith("Subject: "), template
        return Mail(tuple(to), first.removeprefix("Subject: ").strip(), body.lstrip("\n"))

    async def send(self, mail: Mail) -> None:
        await asyncio.to_thread(self._send, mail)

    def _send(self, mail: Mail) -> None:
        settings = self.settings
        message = EmailMessage()
        message["From"], message["To"] = settings.sender, ", ".join(mail.to)
        message["Subject"], message["Message-ID"] = mail.subject, make_msgid()
        message.set_content(mail.body)
        try:
            with smtplib.SMTP(settings.host, settings.port,
                              timeout=settings.timeout_seconds) as smtp:  # fmt: skip
                if settings.starttls:
                    smtp.starttls()
                if settings.username:
                    smtp.login(settings.username, settings.password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            raise MailError(f"SMTP {settings.host}:{settings.port}: {error}") from error
