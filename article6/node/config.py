"""The reference registry's configuration file (TOML). Relative paths are relative to it.

[registry]
registry_id = "GHA01"
party = "GHA"                           # the Party whose registry this is (optional)
listen = "127.0.0.1:7010"               # the hub calls article6.v1.Registry here
database = "gha01.db"                   # SQLite file (or a SQLAlchemy URL)
hub_id = "HUB"
hub_endpoint = "127.0.0.1:7000"
ca_certificate = "pki/ca.crt"
tls_certificate = "pki/GHA01/tls.crt"
tls_key = "pki/GHA01/tls.key"
signing_key = "pki/GHA01/signing.key"
keys = "pki/keys.toml"
metrics_listen = "127.0.0.1:9110"       # Prometheus scrapes /metrics here (optional)

[delivery]
give_up_after_seconds = 259200          # retried for 72 hours, then the message is a dead letter
max_attempts = 0                        # or after this many attempts (0: no limit by count)
backoff_initial_seconds = 0.2
backoff_max_seconds = 5
rpc_timeout_seconds = 5
recovery_interval_seconds = 2           # how often pending transactions are looked up
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from article6.codes import Refusal
from article6.config_check import (
    ConfigError,
    existing_files,
    known_keys,
    numbers_table,
    read_toml,
    required_keys,
    same_identity,
)
from article6.identifiers import check_party_code, check_registry_id
from article6.pump import DeliveryConfig


@dataclass(frozen=True)
class SenderConfig(DeliveryConfig):
    """The registry's ``[delivery]`` table: its pump's (the hub's keys, with a shorter
    back-off: the hub is one peer, up or down), and recovery's."""

    backoff_max_seconds: float = 5.0
    recovery_interval_seconds: float = 5.0
    recovery_after_seconds: float = 30.0


@dataclass(frozen=True)
class RegistryConfig:
    registry_id: str
    party: str
    listen: str
    database: str
    hub_id: str
    hub_endpoint: str
    ca_certificate: Path
    tls_certificate: Path
    tls_key: Path
    signing_key: Path
    keys: Path
    metrics_listen: str | None = None
    delivery: SenderConfig = field(default_factory=SenderConfig)
    # The whole file, for a registry's own sections (e.g. [international]).
    document: dict[str, Any] = field(default_factory=dict, compare=False)
    base: Path = Path()  # the config file's folder: relative paths in it are relative to this
    path: Path = Path()  # the config file


_REGISTRY_KEYS = {
    "registry_id": True,
    "party": False,
    "listen": True,
    "database": True,
    "hub_id": True,
    "hub_endpoint": True,
    "ca_certificate": True,
    "tls_certificate": True,
    "tls_key": True,
    "signing_key": True,
    "keys": True,
    "metrics_listen": False,
}  # fmt: skip  key: required
_FILES = ("ca_certificate", "tls_certificate", "tls_key", "signing_key", "keys")


def _registry_table(path: Path, document: dict[str, Any]) -> dict[str, str]:
    section = document.get("registry")
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: no [registry] table")
    known_keys(path, "registry", section, _REGISTRY_KEYS)
    required_keys(path, "registry", section, (k for k, needed in _REGISTRY_KEYS.items() if needed))
    for key, required in _REGISTRY_KEYS.items():
        if key in section and not isinstance(section[key], str):
            raise ConfigError(f"{path}: [registry] {key} must be a string")
        if required and not section[key]:
            raise ConfigError(f"{path}: [registry] {key} must not be empty")
    return section


def _delivery(path: Path, raw: Any) -> SenderConfig:
    try:
        return SenderConfig(**numbers_table(path, "delivery", raw, SenderConfig))
    except ConfigError:
        raise
    except ValueError as error:  # a value the pump refuses (its message names the key)
        raise ConfigError(f"{path}: {error}") from None


def load_config(path: Path, own_tables: frozenset[str] = frozenset()) -> RegistryConfig:
    """The config, checked whole: every table and key known (``own_tables``: a registry's
    own, such as [international]), every value of its type, every file there."""
    document = read_toml(path)
    unknown = sorted(set(document) - {"registry", "delivery"} - own_tables)
    if unknown:
        raise ConfigError(f"{path}: unknown tables: {', '.join(unknown)}")
    base = path.resolve().parent
    section = _registry_table(path, document)
    existing_files(path, "registry", section, _FILES)
    try:
        config = _config(path, document, section, base)
    except Refusal as refusal:  # an id or Party code the identifiers refuse
        raise ConfigError(f"{path}: [registry] {refusal.detail}") from None
    same_identity(path, "registry", config.registry_id, config.tls_certificate)
    return config


def check_table(config: RegistryConfig, name: str, known: frozenset[str]) -> dict[str, Any]:
    """A registry's own table: a table, with only the keys it knows."""
    return known_keys(config.path, name, config.document.get(name, {}), known)


def _config(
    path: Path, document: dict[str, Any], section: dict[str, str], base: Path
) -> RegistryConfig:
    database = section["database"]
    if "://" not in database:
        database = f"sqlite:///{(base / database).resolve()}"
    return RegistryConfig(
        registry_id=check_registry_id(section["registry_id"]),
        party=check_party_code(section["party"]) if section.get("party") else "",
        listen=section["listen"],
        database=database,
        hub_id=check_registry_id(section["hub_id"]),
        hub_endpoint=section["hub_endpoint"],
        ca_certificate=base / section["ca_certificate"],
        tls_certificate=base / section["tls_certificate"],
        tls_key=base / section["tls_key"],
        signing_key=base / section["signing_key"],
        keys=base / section["keys"],
        metrics_listen=section.get("metrics_listen"),
        delivery=_delivery(path, document.get("delivery", {})),
        document=document,
        base=base,
        path=path,
    )
