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

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from article6.identifiers import check_party_code, check_registry_id


@dataclass(frozen=True)
class SenderConfig:
    give_up_after_seconds: float = 72 * 3600.0
    max_attempts: int = 0
    backoff_initial_seconds: float = 0.2
    backoff_max_seconds: float = 5.0
    rpc_timeout_seconds: float = 5.0
    recovery_interval_seconds: float = 5.0
    recovery_after_seconds: float = 30.0
    poll_interval_seconds: float = 0.05


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


def load_config(path: Path) -> RegistryConfig:
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    base = path.resolve().parent
    section = document["registry"]
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
        delivery=SenderConfig(**document.get("delivery", {})),
        document=document,
        base=base,
    )
