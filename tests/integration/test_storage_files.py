"""A SQLite database is created readable by its owner only, with its WAL and shared-memory
files: the books, the inbox and the audit trail are nobody else's to read."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from article6.sql import make_engine


def test_a_new_sqlite_database_and_its_wal_are_private_to_their_owner(tmp_path: Path) -> None:
    path = tmp_path / "books.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
        files = [path, path.with_name("books.db-wal"), path.with_name("books.db-shm")]
        for made in files:
            assert made.exists(), made
            assert stat.S_IMODE(made.stat().st_mode) & 0o077 == 0, (made, oct(made.stat().st_mode))
    finally:
        engine.dispose()


def test_an_existing_database_keeps_the_permissions_its_operator_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
    finally:
        engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
