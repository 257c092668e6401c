"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from article6.pki import init_pki
from tests.databases import database_url

REGISTRIES = ("HUB", "GHA01", "CHE01")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development PKI for HUB, GHA01 and CHE01."""
    folder = tmp_path_factory.mktemp("pki")
    init_pki(folder, REGISTRIES)
    return folder


@pytest.fixture(scope="session")
def rogue_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA's PKI issuing a certificate that claims to be GHA01."""
    folder = tmp_path_factory.mktemp("rogue-pki")
    init_pki(folder, ("GHA01",))
    return folder


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hub_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The hub's database, once on SQLite and once on a fresh PostgreSQL database."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A registry's database, once on SQLite and once on a fresh PostgreSQL database."""
    with database_url(request.param, tmp_path) as url:
        yield url
