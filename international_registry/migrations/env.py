"""Alembic environment for the international registry's own tables (its sections, accounts
and portal); runs on the connection ``international_registry.schema.migrate`` hands over.
The registry node's shared tables are created by ``article6.node.store``."""

from __future__ import annotations

from alembic import context

from international_registry.schema import OWN_TABLES, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata(),
    render_as_batch=True,
    version_table="ir_alembic_version",
    include_name=lambda name, kind, parent: kind != "table" or name in OWN_TABLES,
)
with context.begin_transaction():
    context.run_migrations()
