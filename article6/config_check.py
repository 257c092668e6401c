"""Checking a TOML config file whole, for every process: one ``ConfigError`` whose message
names the file and the table or key, for each mistake an operator can make."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID


class ConfigError(ValueError):
    """The config file cannot be used as it is: the message names the file and the key."""


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


def known_keys(path: Path, name: str, table: Any, known: Iterable[str]) -> dict[str, Any]:
    """``table`` is a table with only keys in ``known``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"{path}: [{name}] unknown keys: {', '.join(unknown)}")
    return table


def required_keys(path: Path, name: str, table: dict[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        if key not in table:
            raise ConfigError(f"{path}: [{name}] {key} is missing")


def numbers_table(path: Path, name: str, raw: Any, settings: type) -> dict[str, Any]:
    """A table of a dataclass's numeric fields (``int`` or ``float``): known keys, numbers
    of their kind, not negative."""
    fields = {field.name: str(field.type) for field in dataclasses.fields(settings)}
    known_keys(path, name, raw, fields)
    for key, value in raw.items():
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not (whole or (fields[key] == "float" and isinstance(value, float))) or value < 0:
            kind = "a whole number" if fields[key] == "int" else "a number"
            raise ConfigError(f"{path}: [{name}] {key} must be {kind} >= 0, not {value!r}")
    return dict(raw)


def existing_files(path: Path, name: str, table: dict[str, Any], keys: Iterable[str]) -> None:
    base = path.resolve().parent
    for key in keys:
        if not (base / table[key]).is_file():
            raise ConfigError(f"{path}: [{name}] {key}: no such file {base / table[key]}")


def certificate_name(path: Path) -> str:
    """The identity a TLS certificate carries (its common name), as peers will see it."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise ConfigError(f"{path}: not a PEM certificate") from None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def same_identity(path: Path, name: str, identity: str, certificate: Path) -> None:
    """The configured id is the one its certificate carries, so that peers know it so."""
    named = certificate_name(certificate)
    if named != identity:
        raise ConfigError(f"{path}: [{name}] registry_id {identity} but tls_certificate "
                          f"{certificate} is {named}'s")  # fmt: skip
