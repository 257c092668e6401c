"""Databases for tests: a SQLite file, or a fresh PostgreSQL database created and dropped.

PostgreSQL tests skip when no server answers at 127.0.0.1:5432, unless A6_REQUIRE_POSTGRES=1
(set by .ci/run), which turns a missing server into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def postgres_required() -> bool:
    return os.environ.get("A6_REQUIRE_POSTGRES") == "1"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"a6test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True)
    except psycopg.OperationalError as error:
        if postgres_required():
            pytest.fail(f"PostgreSQL is required (A6_REQUIRE_POSTGRES=1) but unreachable: {error}")
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432 ({error})")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES_URL.format(name=name)
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextmanager
def database_url(kind: str, folder: Path) -> Iterator[str]:
    if kind == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{folder / 'hub.db'}"
