"""A PostgreSQL engine's pooled connections: tried before reuse only once they have sat idle,
and replaced, with the whole pool, when the server has closed them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, exc

from article6 import sql
from article6.sql import make_engine
from tests.databases import POSTGRES_ADMIN, postgres_database


@pytest.fixture
def engine() -> Iterator[Engine]:
    with postgres_database() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The connections the engine tried before lending them, in order."""
    tried: list[object] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        tried.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return tried


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


def test_a_connection_lent_again_at_once_is_not_tried(engine: Engine, pings: list[object]) -> None:
    first = backend(engine)
    assert [backend(engine) for _ in range(20)] == [first] * 20
    assert pings == []


def test_an_idle_connection_the_server_closed_is_tried_and_replaced(
    engine: Engine, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backend(engine)
    terminate(engine)
    monkeypatch.setattr(sql, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout is after idling
    second = backend(engine)  # the dead connection failed its ping: a new one, no error
    assert second != first
    assert len(pings) == 1
    assert backend(engine) == second


def test_a_connection_closed_while_in_use_fails_one_transaction_and_the_next_reconnects(
    engine: Engine, pings: list[object]
) -> None:
    first = backend(engine)
    terminate(engine)
    with pytest.raises(exc.OperationalError) as failure:
        backend(engine)
    assert failure.value.connection_invalidated
    assert backend(engine) != first
    assert pings == []
