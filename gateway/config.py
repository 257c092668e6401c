"""The hub's configuration file (TOML). Relative paths are relative to the file's folder.

[hub]
registry_id = "HUB"
listen = "127.0.0.1:7000"               # registries call article6.v1.Hub here
admin_listen = "127.0.0.1:7001"         # operators call article6.v1.AdminService here
metrics_listen = "127.0.0.1:9101"       # Prometheus scrapes /metrics here (optional)
database = "hub.db"                     # a SQLite file, or a SQLAlchemy URL (postgresql+psycopg://...)
ca_certificate = "pki/ca.crt"
tls_certificate = "pki/HUB/tls.crt"
tls_key = "pki/HUB/tls.key"
signing_key = "pki/HUB/signing.key"
keys = "pki/keys.toml"                  # every registry's public signing keys
admin_identities = ["OPERATOR"]         # TLS identities allowed on the admin port
acceptance_timeout_seconds = 60         # an acquiring registry's time to answer
reconciliation_interval_seconds = 0     # reconcile one registry every N s in turn (0: off)
rate_limit_per_second = 1000            # each registry's sustained request rate (0: no limit)
rate_limit_burst = 0                    # requests at once (0: twice the rate)
handshake_timeout_seconds = 5           # a connection that has not finished TLS by then is closed
max_connections = 4096                  # connections at once, counted before TLS

[delivery]
give_up_after_seconds = 259200          # retried for 72 hours, then the message is a dead letter
max_attempts = 0                        # or after this many attempts (0: no limit by count)
backoff_initial_seconds = 0.2
backoff_max_seconds = 30                # the longest wait between two attempts of a message
rpc_timeout_seconds = 5
batch_size = 64                         # messages in one DeliverBatch
lanes = 2                               # batches in flight to each registry at once
breaker_failures = 3                    # batches unanswered in a row that stop delivery to it
breaker_open_seconds = 1                # then one message probes it after this, doubling
breaker_max_open_seconds = 60           # up to this

[rules]
first_vintage = 2021                    # the earliest vintage of Article 6.2 outcomes

[[registries]]
registry_id = "GHA01"                   # a Party registry: the AEF's id, ISO alpha-3 + 2 digits
kind = "party"                          # international, ars, mechanism or party
party = "GHA"                           # the Party it acts for (default: the id's letters)
endpoint = "127.0.0.1:7010"             # where it serves article6.v1.Registry
cooperative_approaches = ["CA0001"]     # approaches under which it may issue
suspended = false
rate_limit_per_second = 500             # optional: this registry's own limit (and _burst)
"""

from __future__ import annotations

import dataclasses
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
from article6.identifiers import (
    A64_REGISTRY_SUFFIX,
    PARTY_REGISTRY_ID,
    check_cooperative_approach_id,
    check_party_code,
    check_registry_id,
)
from article6.limits import (
    DEFAULT_RATE_LIMIT_PER_SECOND,
    HANDSHAKE_TIMEOUT_SECONDS,
    MAX_CONNECTIONS,
)
from article6.pump import DeliveryConfig
from article6.ratelimit import Limit, RateLimiter
from gateway.checks import DEFAULT_POLICY, Policy

DEFAULT_LIMIT = Limit(DEFAULT_RATE_LIMIT_PER_SECOND, 2 * DEFAULT_RATE_LIMIT_PER_SECOND)
REGISTRY_KINDS = frozenset({"international", "ars", "mechanism", "party"})


@dataclass(frozen=True)
class RegistryEntry:
    registry_id: str
    kind: str
    endpoint: str
    cooperative_approaches: frozenset[str] = frozenset()
    suspended: bool = False
    rate_limit: Limit | None = None
    party: str = ""  # the one Party it acts for; "" for the IR (many) and the mechanism


@dataclass(frozen=True)
class HubConfig:
    registry_id: str
    listen: str
    admin_listen: str
    database: str
    ca_certificate: Path
    tls_certificate: Path
    tls_key: Path
    signing_key: Path
    keys: Path
    registries: dict[str, RegistryEntry]
    admin_identities: frozenset[str] = frozenset({"OPERATOR"})
    metrics_listen: str | None = None
    acceptance_timeout_seconds: float = 60.0
    reconciliation_interval_seconds: float = 0.0
    rate_limit: Limit | None = DEFAULT_LIMIT
    handshake_timeout_seconds: float = HANDSHAKE_TIMEOUT_SECONDS
    max_connections: int = MAX_CONNECTIONS
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    policy: Policy = DEFAULT_POLICY

    def rate_limiter(self) -> RateLimiter:
        """Each registry's limit (its own, else the hub's), keyed by TLS identity."""
        own = {r.registry_id: r.rate_limit for r in self.registries.values() if r.rate_limit}
        return RateLimiter(self.rate_limit, own)


def _limit(table: dict[str, Any], default_rate: float = 0.0) -> Limit | None:
    rate = float(table.get("rate_limit_per_second", default_rate))
    if rate < 0:
        raise ValueError("rate_limit_per_second must not be negative")
    if rate == 0:
        return None
    return Limit(rate, max(1.0, float(table.get("rate_limit_burst", 0)) or 2 * rate))


def database_url(value: str, base: Path) -> str:
    """A SQLAlchemy URL as is; anything else is a SQLite file path relative to ``base``."""
    if "://" in value:
        return value
    return f"sqlite:///{(base / value).resolve()}"


def _registry(entry: dict[str, Any]) -> RegistryEntry:
    kind = entry.get("kind", "party")
    if kind not in REGISTRY_KINDS:
        raise ValueError(f"registry {entry.get('registry_id')}: unknown kind {kind!r}")
    registry_id = check_registry_id(entry["registry_id"])
    party = ""
    if kind == "party":
        # The AEF's Party ITMO registry id (6/CMA.4; AEF syntax checkers): ISO-3 + 2 digits.
        if not PARTY_REGISTRY_ID.fullmatch(registry_id):
            raise ValueError(
                f"Party registry id {registry_id!r} is not ISO 3166-1 alpha-3 + 2 digits"
            )
        if registry_id.endswith(A64_REGISTRY_SUFFIX):
            raise ValueError(
                f"Party registry id {registry_id!r}: the digits {A64_REGISTRY_SUFFIX} are kept "
                "for the ITMO ids of A6.4ERs in the AEF (docs/AEF.md)"
            )
        party = check_party_code(entry.get("party", registry_id[:3]))
    return RegistryEntry(
        registry_id=registry_id,
        kind=kind,
        endpoint=entry["endpoint"],
        cooperative_approaches=frozenset(
            check_cooperative_approach_id(ca) for ca in entry.get("cooperative_approaches", [])
        ),
        suspended=bool(entry.get("suspended", False)),
        rate_limit=_limit(entry),
        party=party,
    )


_HUB_REQUIRED = ("registry_id", "listen", "admin_listen", "database", "ca_certificate",
                 "tls_certificate", "tls_key", "signing_key", "keys")  # fmt: skip
_HUB_KEYS = {*_HUB_REQUIRED, "admin_identities", "metrics_listen", "acceptance_timeout_seconds",
             "reconciliation_interval_seconds", "rate_limit_per_second", "rate_limit_burst",
             "handshake_timeout_seconds", "max_connections"}  # fmt: skip
_REGISTRY_ENTRY_KEYS = {"registry_id", "kind", "endpoint", "cooperative_approaches", "party",
                        "suspended", "rate_limit_per_second", "rate_limit_burst"}  # fmt: skip


def load_config(path: Path) -> HubConfig:
    """The hub's config, checked whole: ConfigError names the file and the key of any
    mistake (an unknown table or key, a missing one, a value the hub cannot use, a missing
    file, an id its TLS certificate does not carry)."""
    document = read_toml(path)
    unknown = sorted(set(document) - {"hub", "registries", "delivery", "rules"})
    if unknown:
        raise ConfigError(f"{path}: unknown tables: {', '.join(unknown)}")
    hub = known_keys(path, "hub", document.get("hub"), _HUB_KEYS)
    required_keys(path, "hub", hub, _HUB_REQUIRED)
    existing_files(path, "hub", hub, ("ca_certificate", "tls_certificate", "tls_key",
                                      "signing_key", "keys"))  # fmt: skip
    for entry in document.get("registries", []):
        known_keys(path, "registries", entry, _REGISTRY_ENTRY_KEYS)
    try:
        config = _hub_config(path, document, hub)
    except Refusal as refusal:
        raise ConfigError(f"{path}: {refusal.detail}") from None
    except (ValueError, TypeError, KeyError) as error:
        raise ConfigError(f"{path}: {error}") from None
    same_identity(path, "hub", config.registry_id, config.tls_certificate)
    return config


def _hub_config(path: Path, document: dict[str, Any], hub: dict[str, Any]) -> HubConfig:
    base = path.resolve().parent
    registries = [_registry(entry) for entry in document.get("registries", [])]
    delivery = numbers_table(path, "delivery", document.get("delivery", {}), DeliveryConfig)
    return HubConfig(
        registry_id=check_registry_id(hub["registry_id"]),
        listen=hub["listen"],
        admin_listen=hub["admin_listen"],
        database=database_url(hub["database"], base),
        ca_certificate=base / hub["ca_certificate"],
        tls_certificate=base / hub["tls_certificate"],
        tls_key=base / hub["tls_key"],
        signing_key=base / hub["signing_key"],
        keys=base / hub["keys"],
        registries={entry.registry_id: entry for entry in registries},
        admin_identities=frozenset(hub.get("admin_identities", ["OPERATOR"])),
        metrics_listen=hub.get("metrics_listen"),
        acceptance_timeout_seconds=float(hub.get("acceptance_timeout_seconds", 60)),
        reconciliation_interval_seconds=float(hub.get("reconciliation_interval_seconds", 0)),
        rate_limit=_limit(hub, DEFAULT_RATE_LIMIT_PER_SECOND),
        handshake_timeout_seconds=float(
            hub.get("handshake_timeout_seconds", HANDSHAKE_TIMEOUT_SECONDS)
        ),
        max_connections=int(hub.get("max_connections", MAX_CONNECTIONS)),
        delivery=DeliveryConfig(**delivery),
        policy=Policy(
            **known_keys(
                path,
                "rules",
                document.get("rules", {}),
                (f.name for f in dataclasses.fields(Policy)),
            )
        ),
    )
