"""Signing keys and the directory that maps key ids to registries.

A key id is the lowercase hex SHA-256 of the 32-byte raw Ed25519 public key. The directory
gives each key one registry and a validity window ``not_before <= t < not_after``; a registry
rotates by adding a new key whose window overlaps the old one's end.

``SigningKey`` never shows its private bytes: its repr and str carry the key id only, so a key
that reaches a log line or a traceback leaks nothing.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from article6.codes import Code, Refusal

KEY_ID = re.compile(r"[0-9a-f]{64}")
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def key_id(public_key_raw: bytes) -> str:
    """Lowercase hex SHA-256 of a raw 32-byte Ed25519 public key."""
    assert len(public_key_raw) == PUBLIC_KEY_BYTES, len(public_key_raw)
    return hashlib.sha256(public_key_raw).hexdigest()


class SigningKey:
    """An Ed25519 private key. Create with ``generate``, ``from_seed`` or ``from_pem``."""

    __slots__ = ("_private", "key_id", "public_raw")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(self.public_raw)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """From a 32-byte RFC 8032 seed: deterministic, for test vectors."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        private = serialization.load_pem_private_key(data, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return cls(private)

    def to_pem(self) -> bytes:
        """PKCS#8 PEM of the private key, for writing to a file only its owner can read."""
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class DirectoryKey:
    """A registry's public signing key and when it may be used."""

    registry: str
    public_raw: bytes
    not_before: datetime
    not_after: datetime | None = None
    key_id: str = field(init=False)
    _public: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        assert len(self.public_raw) == PUBLIC_KEY_BYTES
        assert self.not_before.tzinfo is not None, "validity windows are in UTC"
        assert self.not_after is None or self.not_before < self.not_after
        object.__setattr__(self, "key_id", key_id(self.public_raw))
        # Loaded once: every envelope verified would otherwise load it again.
        object.__setattr__(self, "_public", Ed25519PublicKey.from_public_bytes(self.public_raw))

    def valid_at(self, instant: datetime) -> bool:
        return self.not_before <= instant and (self.not_after is None or instant < self.not_after)

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self._public.verify(signature, data)
        except InvalidSignature:
            return False
        return True


class KeyDirectory:
    """Key id -> registry key, for every registry the receiver knows."""

    def __init__(self, keys: Iterable[DirectoryKey] = ()) -> None:
        self._keys: dict[str, DirectoryKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: DirectoryKey) -> None:
        existing = self._keys.get(key.key_id)
        if existing is not None and existing.registry != key.registry:
            raise ValueError(f"key {key.key_id} listed for {existing.registry} and {key.registry}")
        self._keys[key.key_id] = key

    def lookup(self, key_id: str) -> DirectoryKey:
        key = self._keys.get(key_id)
        if key is None:
            raise Refusal(Code.KEY_UNKNOWN, f"key {key_id} is not in the directory")
        return key

    def replace(self, other: KeyDirectory) -> None:
        """Take ``other``'s keys in place (everyone holding this directory sees them)."""
        self._keys = dict(other._keys)

    def all(self) -> list[DirectoryKey]:
        return list(self._keys.values())

    def registries(self) -> frozenset[str]:
        return frozenset(key.registry for key in self._keys.values())

    def keys_of(self, registry: str) -> list[DirectoryKey]:
        return [key for key in self._keys.values() if key.registry == registry]


KEY_FILE_HEADER = """\
# Public signing keys: each key's registry, key id (SHA-256 of the raw key), raw Ed25519
# public key in hex, and validity window in UTC (not_after is optional).
"""


def _toml_instant(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_file_text(keys: Iterable[DirectoryKey]) -> str:
    """The keys.toml text listing ``keys``; ``read_key_file`` reads it back."""
    entries = []
    for key in keys:
        lines = [
            "[[key]]",
            f'registry = "{key.registry}"',
            f'key_id = "{key.key_id}"',
            f'public_key = "{key.public_raw.hex()}"',
            f"not_before = {_toml_instant(key.not_before)}",
        ]
        if key.not_after is not None:
            lines.append(f"not_after = {_toml_instant(key.not_after)}")
        entries.append("\n".join(lines) + "\n")
    return KEY_FILE_HEADER + "\n" + "\n".join(entries)


def read_key_file(path: Path) -> KeyDirectory:
    """Load a keys.toml; a key id that does not match its public key is an error."""
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    directory = KeyDirectory()
    for entry in document.get("key", []):
        key = DirectoryKey(
            registry=entry["registry"],
            public_raw=bytes.fromhex(entry["public_key"]),
            not_before=entry["not_before"],
            not_after=entry.get("not_after"),
        )
        if entry.get("key_id", key.key_id) != key.key_id:
            raise ValueError(f"{path}: key_id {entry['key_id']} does not match its public key")
        directory.add(key)
    return directory
