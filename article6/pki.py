"""A development PKI: one CA, a TLS certificate and a signing key per registry.

``article6 pki init --out DIR --registry HUB --registry GHA01 ...`` writes::

    DIR/ca.crt  DIR/ca.key                  the development CA (ECDSA P-256)
    DIR/<ID>/tls.crt  DIR/<ID>/tls.key      TLS certificate: CN=<ID>, DNS SAN=<ID lowercased>
    DIR/<ID>/signing.key                    Ed25519 signing key of <ID> (PKCS#8 PEM)
    DIR/keys.toml                           every public signing key with its registry and validity

The TLS identity of a registry is its certificate's common name, equal to its registry id.
Private files are created with mode 0600 and never overwritten. For production, registries
bring certificates from the secretariat's CA and publish their own signing keys; only the
layout is shared with this development helper.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from article6.identifiers import check_registry_id
from article6.keys import DirectoryKey, SigningKey, key_file_text, read_key_file

CERTIFICATE_DAYS = 365
CA_NAME = "Article 6 gateway development CA"


@dataclass(frozen=True)
class RegistryFiles:
    """Where one registry's credentials live inside a PKI folder."""

    folder: Path
    registry: str

    @property
    def tls_certificate(self) -> Path:
        return self.folder / self.registry / "tls.crt"

    @property
    def tls_key(self) -> Path:
        return self.folder / self.registry / "tls.key"

    @property
    def signing_key(self) -> Path:
        return self.folder / self.registry / "signing.key"

    @property
    def ca_certificate(self) -> Path:
        return self.folder / "ca.crt"


def _write_new(path: Path, data: bytes, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    with os.fdopen(os.open(path, flags, 0o600 if private else 0o644), "wb") as handle:
        handle.write(data)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    now: datetime,
    is_ca: bool,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject.lower())]), critical=False
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def init_pki(folder: Path, registries: Sequence[str], now: datetime | None = None) -> list[str]:
    """Write a CA and credentials for each registry; return the key ids written, in order."""
    for registry in registries:
        check_registry_id(registry)
    if len(set(registries)) != len(registries):
        raise ValueError("registry ids must be distinct")
    now = now or datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    ca_cert = _certificate(CA_NAME, ca_key.public_key(), ca_name, ca_key, now=now, is_ca=True)
    _write_new(folder / "ca.key", _private_pem(ca_key), private=True)
    _write_new(folder / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    signing_keys = [(r, _credentials(folder, r, ca_name, ca_key, now)) for r in registries]
    not_before = now - timedelta(minutes=5)
    directory = [
        DirectoryKey(registry, key.public_raw, not_before) for registry, key in signing_keys
    ]
    _write_new(folder / "keys.toml", key_file_text(directory).encode(), private=False)
    return [key.key_id for _, key in signing_keys]


def _credentials(
    folder: Path, registry: str, ca_name: x509.Name, ca_key: ec.EllipticCurvePrivateKey,
    now: datetime,
) -> SigningKey:  # fmt: skip
    """A registry's TLS key and certificate (issued by the CA) and its signing key."""
    files = RegistryFiles(folder, registry)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(registry, tls_key.public_key(), ca_name, ca_key, now=now, is_ca=False)
    _write_new(files.tls_key, _private_pem(tls_key), private=True)
    _write_new(files.tls_certificate, cert.public_bytes(serialization.Encoding.PEM), False)
    signing_key = SigningKey.generate()
    _write_new(files.signing_key, signing_key.to_pem(), private=True)
    return signing_key


class UnknownRegistry(LookupError):
    """The PKI folder holds no credentials for that registry."""


def add_registry(folder: Path, registry: str, now: datetime | None = None) -> str:
    """Issue credentials for one more registry (or client identity) from the PKI's own CA,
    and add its signing key to ``keys.toml``; return its key id. Refuses (FileExistsError)
    a registry the folder already holds."""
    check_registry_id(registry)
    now = now or datetime.now(UTC)
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_name = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes()).subject
    signing_key = _credentials(folder, registry, ca_name, ca_key, now)
    keys = [*read_key_file(folder / "keys.toml").all(),
            DirectoryKey(registry, signing_key.public_raw, now - timedelta(minutes=5))]  # fmt: skip
    _replace(folder / "keys.toml", key_file_text(keys).encode())
    return signing_key.key_id


def _replace(path: Path, data: bytes) -> None:
    """Write a public file anew: readers see the old file or the new, never half."""
    temporary = path.with_name(f"{path.name}.new")
    temporary.unlink(missing_ok=True)
    _write_new(temporary, data, private=False)
    temporary.replace(path)


def rotate_signing_key(
    folder: Path, registry: str, overlap: timedelta, now: datetime | None = None
) -> tuple[str, str]:
    """Give ``registry`` a new signing key; its current keys stay valid for ``overlap`` more
    (messages already signed, waiting in outboxes, still verify), then expire.

    Writes ``<ID>/signing.key`` anew (the old one is kept as ``signing.key.<key id>``, mode
    0600, until its owner destroys it) and ``keys.toml`` with both keys. Returns the (old, new)
    key ids. Receivers pick the new file up on reload (the hub on SIGHUP)."""
    now = now or datetime.now(UTC)
    files = RegistryFiles(folder, registry)
    if not files.signing_key.exists():
        raise UnknownRegistry(f"{folder} holds no signing key for {registry}")
    current = SigningKey.from_pem(files.signing_key.read_bytes())
    directory = read_key_file(folder / "keys.toml")
    expires = now + overlap
    keys = [
        DirectoryKey(key.registry, key.public_raw, key.not_before, expires)
        if key.registry == registry and (key.not_after is None or key.not_after > expires)
        else key
        for key in directory.all()
    ]
    fresh = SigningKey.generate()
    keys.append(DirectoryKey(registry, fresh.public_raw, now - timedelta(minutes=5)))
    files.signing_key.rename(files.signing_key.with_name(f"signing.key.{current.key_id}"))
    _write_new(files.signing_key, fresh.to_pem(), private=True)
    _replace(folder / "keys.toml", key_file_text(keys).encode())
    return current.key_id, fresh.key_id
