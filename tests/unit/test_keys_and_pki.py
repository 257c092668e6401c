"""Signing keys, the key file, and the development PKI."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from article6.cli import main as cli
from article6.codes import Code, Refusal
from article6.keys import DirectoryKey, KeyDirectory, SigningKey, key_file_text, read_key_file
from article6.pki import RegistryFiles, init_pki


def test_a_signing_key_never_shows_its_private_bytes() -> None:
    key = SigningKey.generate()
    pem = key.to_pem()
    body = b"".join(pem.splitlines()[1:-1]).decode()
    for shown in (repr(key), str(key), f"{key}", repr([key])):
        assert key.key_id in shown
        assert body not in shown
        assert "PRIVATE" not in shown


def test_a_key_round_trips_through_pem() -> None:
    key = SigningKey.generate()
    assert SigningKey.from_pem(key.to_pem()).key_id == key.key_id


def test_the_directory_refuses_one_key_for_two_registries() -> None:
    key = SigningKey.generate()
    since = datetime(2026, 1, 1, tzinfo=UTC)
    directory = KeyDirectory([DirectoryKey("GHA01", key.public_raw, since)])
    with pytest.raises(ValueError, match="listed for"):
        directory.add(DirectoryKey("CHE01", key.public_raw, since))
    with pytest.raises(Refusal) as refusal:
        directory.lookup("0" * 64)
    assert refusal.value.code is Code.KEY_UNKNOWN


def test_the_key_file_round_trips_with_validity_windows(tmp_path: Path) -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    keys = [
        DirectoryKey("GHA01", SigningKey.generate().public_raw, since, since + timedelta(days=90)),
        DirectoryKey("GHA01", SigningKey.generate().public_raw, since + timedelta(days=60)),
    ]
    path = tmp_path / "keys.toml"
    path.write_text(key_file_text(keys))
    loaded = read_key_file(path)
    assert sorted(loaded.keys_of("GHA01"), key=lambda k: k.key_id) == sorted(
        keys, key=lambda k: k.key_id
    )


def test_a_key_file_with_a_wrong_key_id_is_rejected(tmp_path: Path) -> None:
    key = DirectoryKey("GHA01", SigningKey.generate().public_raw, datetime(2026, 1, 1, tzinfo=UTC))
    path = tmp_path / "keys.toml"
    path.write_text(key_file_text([key]).replace(key.key_id, "0" * 64))
    with pytest.raises(ValueError, match="does not match"):
        read_key_file(path)


def test_pki_init_writes_credentials_for_each_registry(tmp_path: Path) -> None:
    key_ids = init_pki(tmp_path, ["HUB", "GHA01"])
    directory = read_key_file(tmp_path / "keys.toml")
    for registry, key_id in zip(["HUB", "GHA01"], key_ids, strict=True):
        files = RegistryFiles(tmp_path, registry)
        assert directory.lookup(key_id).registry == registry
        assert SigningKey.from_pem(files.signing_key.read_bytes()).key_id == key_id
        cert = x509.load_pem_x509_certificate(files.tls_certificate.read_bytes())
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == registry
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [registry.lower()]
        for private in (files.signing_key, files.tls_key):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600


def test_pki_init_never_overwrites(tmp_path: Path) -> None:
    init_pki(tmp_path, ["HUB"])
    before = (tmp_path / "HUB" / "signing.key").read_bytes()
    with pytest.raises(FileExistsError):
        init_pki(tmp_path, ["HUB"])
    assert (tmp_path / "HUB" / "signing.key").read_bytes() == before


def test_pki_init_refuses_bad_or_repeated_registry_ids(tmp_path: Path) -> None:
    with pytest.raises(Refusal):
        init_pki(tmp_path / "a", ["not-valid"])
    with pytest.raises(ValueError, match="distinct"):
        init_pki(tmp_path / "b", ["HUB", "HUB"])


def test_pki_add_issues_one_more_registry_from_the_same_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init_pki(tmp_path, ["HUB", "GHA01"])
    assert cli(["pki", "add", "--pki", str(tmp_path), "--registry", "SGP01"]) == 0
    added = RegistryFiles(tmp_path, "SGP01")
    key_id = SigningKey.from_pem(added.signing_key.read_bytes()).key_id
    directory = read_key_file(tmp_path / "keys.toml")
    assert directory.lookup(key_id).registry == "SGP01"
    assert {key.registry for key in directory.all()} == {"HUB", "GHA01", "SGP01"}
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate(added.tls_certificate.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert stat.S_IMODE(added.tls_key.stat().st_mode) == 0o600
    capsys.readouterr()
    assert cli(["pki", "add", "--pki", str(tmp_path), "--registry", "SGP01"]) == 1
    assert "already in" in capsys.readouterr().err
    assert cli(["pki", "add", "--pki", str(tmp_path / "none"), "--registry", "X01"]) == 2
    assert cli(["pki", "rotate", "--pki", str(tmp_path), "--registry", "CHE01"]) == 2
    assert "no signing key for CHE01" in capsys.readouterr().err
