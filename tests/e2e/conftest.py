"""Fixtures for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.network import Network
from tests.e2e.helpers import make_network


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """The hub and GHA01, CHE01 as running processes."""
    yield from make_network(tmp_path)
