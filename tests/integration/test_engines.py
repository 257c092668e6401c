"""A PostgreSQL engine's pooled connections survive the server closing them (a restart): each
is tried before it is lent (``pool_pre_ping``), and a dead one is replaced, with the pool."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine

from article6.sql import make_engine
from tests.databases import POSTGRES_ADMIN, postgres_database


@pytest.fixture
def engine() -> Iterator[Engine]:
    with postgres_database() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def backend(engine: Engine) -> int:
    with engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        assert isinstance(pid, int)
        return pid


def terminate(engine: Engine) -> None:
    """The server closes every connection to the engine's database, as a restart would."""
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (engine.url.database,),
        )


def test_a_connection_the_server_closed_is_replaced_before_anything_runs_on_it(
    engine: Engine,
) -> None:
    first = backend(engine)
    assert backend(engine) == first  # pooled: the same connection lent again
    terminate(engine)
    second = backend(engine)  # no error: the dead connection failed its ping
    assert second != first
    assert backend(engine) == second
