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


@pytest.fixture
def impatient_network(tmp_path: Path) -> Iterator[Network]:
    """Gives up delivering after two attempts; cancels after 4 s without an answer."""
    yield from make_network(
        tmp_path,
        acceptance_timeout_seconds=4.0,
        delivery={"max_attempts": 2, "backoff_initial_seconds": 0.1, "backoff_max_seconds": 0.2},
    )
