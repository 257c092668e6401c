"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.storage.database import Database
from gateway.storage.schema import metadata


def test_migrations_match_the_declared_schema(hub_database_url: str) -> None:
    database = Database(hub_database_url)
    try:
        database.migrate()
        database.migrate()  # a second run is a no-op
        with database.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
    finally:
        database.close()
