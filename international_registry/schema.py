"""The international registry's own tables (sections, accounts, the portal) and their
Alembic migrations (``migrations/``). A database its earlier versions created without
migrations is recognised (its tables there, no version recorded) and stamped at the first
revision, then brought up to date like any other."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData, inspect, text

from international_registry import sections
from international_registry.portal import store

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "ir_alembic_version"
OWN_TABLES = frozenset(sections.metadata.tables) | frozenset(store.metadata.tables)


def metadata() -> MetaData:
    """One MetaData holding every table the migrations build (for comparing with them)."""
    combined = MetaData()
    for source in (sections.metadata, store.metadata):
        for table in source.tables.values():
            table.to_metadata(combined)
    return combined


def migrate(engine: Engine) -> None:
    """Bring the registry's own tables to the newest migration (several processes, and the
    command line beside the server, may call this at once)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7120)"))
        config.attributes["connection"] = connection
        present = set(inspect(connection).get_table_names())
        if VERSION_TABLE not in present and "opening_requests" in present:
            command.stamp(config, "0001")  # made before migrations, by create_all
        command.upgrade(config, "head")
