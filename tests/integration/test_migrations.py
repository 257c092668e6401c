"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL: the
hub's, and the international registry's own tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, inspect

from article6.sql import make_engine
from gateway.storage.database import Database
from gateway.storage.schema import metadata
from international_registry import sections
from international_registry.schema import OWN_TABLES, VERSION_TABLE, migrate
from international_registry.schema import metadata as ir_metadata


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


def _ir_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_name": lambda name, kind, parent: kind != "table" or name in OWN_TABLES,
            "version_table": VERSION_TABLE,
        })  # fmt: skip
        return list(compare_metadata(context, ir_metadata()))


def test_the_international_registrys_migrations_match_its_tables(
    registry_database_url: str,
) -> None:
    engine = make_engine(registry_database_url)
    try:
        migrate(engine)
        migrate(engine)  # a second run is a no-op
        assert _ir_differences(engine) == []
    finally:
        engine.dispose()


def test_a_registry_database_made_before_migrations_is_brought_up_to_date(
    registry_database_url: str,
) -> None:
    """Its tables were created by create_all: they are kept, with their rows, and the
    portal's are added."""
    engine = make_engine(registry_database_url)
    try:
        earlier = MetaData()
        for name in ("opening_requests", "sections", "accounts"):
            sections.metadata.tables[name].to_metadata(earlier)
        earlier.create_all(engine)
        with engine.begin() as connection:
            connection.execute(sections.sections.insert().values(
                party="SGP", request_id="REQ-0001", status="verified",
                opened_at=datetime.now(UTC), verified_at=None,
            ))  # fmt: skip
        migrate(engine)
        assert _ir_differences(engine) == []
        with engine.connect() as connection:
            assert sections.section_status(connection, "SGP") is sections.SectionStatus.VERIFIED
            assert inspect(connection).has_table("portal_people")
    finally:
        engine.dispose()
