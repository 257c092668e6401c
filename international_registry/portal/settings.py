"""The ``[portal]`` table of the international registry's config, checked when the process
starts (docs/PORTAL.md): a missing key, a key of the wrong type or a key file that cannot be
read stops the start with one line naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from international_registry.portal.app import PortalSettings
from international_registry.portal.mail import SmtpSettings
from international_registry.portal.store import normal_email

KNOWN = {
    "listen", "public_url", "secret_key_file", "documents_folder", "secretariat",
    "smtp_host", "smtp_port", "mail_from", "smtp_starttls", "smtp_username",
    "smtp_password_file", "cookie_secure", "passcode_minutes", "passcode_attempts",
    "upload_link_hours", "session_hours",
}  # fmt: skip


class PortalConfigError(ValueError):
    """The ``[portal]`` table cannot be used as it is."""


def _text(raw: dict[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise PortalConfigError(f"[portal] {key} must be a non-empty string")
    return value


def _number(raw: dict[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PortalConfigError(f"[portal] {key} must be a positive whole number")
    return value


def _secret(path: Path, key: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as error:
        raise PortalConfigError(f"[portal] {key}: cannot read {path}: {error.strerror}") from None


def portal_settings(raw: dict[str, Any], base: Path, registry_id: str) -> PortalSettings:
    """Settings from the table; relative paths are relative to the config file's folder."""
    unknown = sorted(set(raw) - KNOWN)
    if unknown:
        raise PortalConfigError(f"[portal] unknown keys: {', '.join(unknown)}")
    key_file = base / _text(raw, "secret_key_file")
    secret_key = _secret(key_file, "secret_key_file")
    if len(secret_key) < 32:
        raise PortalConfigError(f"[portal] secret_key_file {key_file}: at least 32 characters")
    password = ""
    if raw.get("smtp_password_file"):
        password = _secret(base / _text(raw, "smtp_password_file"), "smtp_password_file")
    officers = raw.get("secretariat", [])
    if not isinstance(officers, list) or not all(isinstance(o, str) for o in officers):
        raise PortalConfigError("[portal] secretariat must be a list of e-mail addresses")
    smtp = SmtpSettings(
        host=_text(raw, "smtp_host", "127.0.0.1"), port=_number(raw, "smtp_port", 25),
        sender=_text(raw, "mail_from"), starttls=bool(raw.get("smtp_starttls", False)),
        username=str(raw.get("smtp_username", "")), password=password,
    )  # fmt: skip
    return PortalSettings(
        listen=_text(raw, "listen"), public_url=_text(raw, "public_url").rstrip("/"),
        secret_key=secret_key, documents_folder=base / _text(raw, "documents_folder"),
        secretariat=frozenset(normal_email(o) for o in officers), smtp=smtp,
        cookie_secure=bool(raw.get("cookie_secure", True)),
        passcode_minutes=_number(raw, "passcode_minutes", 10),
        passcode_attempts=_number(raw, "passcode_attempts", 5),
        upload_link_hours=_number(raw, "upload_link_hours", 72),
        session_hours=_number(raw, "session_hours", 8),
        registry_id=registry_id,
    )  # fmt: skip
