"""authorization versions (protocol 2.0)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from article6.v1 import transaction_pb2

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Authorizations recorded before 2.0 become version 1 with no definition, open timeframes of
# use and not revoked: what 1.x meant.
_NEW_COLUMNS = (
    ("version", sa.Integer(), "1"),
    ("first_transfer_definition", sa.Integer(), "0"),
    ("use_year_first", sa.Integer(), "0"),
    ("use_year_last", sa.Integer(), "0"),
    ("revoked", sa.Boolean(), sa.false()),
)


def upgrade() -> None:
    with op.batch_alter_table("authorizations") as batch:
        for name, kind, default in _NEW_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=False, server_default=default))
    with op.batch_alter_table("authorizations") as batch:
        for name, _, _ in _NEW_COLUMNS:
            batch.alter_column(name, server_default=None)
    op.create_table(
        "authorization_versions",
        sa.Column("authorization_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("registry", sa.String(length=16), nullable=False),
        sa.Column("transaction_id", sa.String(length=40), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("authorization_id", "version"),
    )
    _first_versions()


def _first_versions() -> None:
    """Each authorization recorded before 2.0 gets its version 1, as its terms were sent."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT * FROM authorizations")).mappings().all()
    versions = sa.table(
        "authorization_versions",
        sa.column("authorization_id"), sa.column("version"), sa.column("registry"),
        sa.column("transaction_id"), sa.column("recorded_at"), sa.column("body"),
    )  # fmt: skip
    for row in rows:
        body = transaction_pb2.Authorization(
            authorization_id=row["authorization_id"], authorizing_party=row["authorizing_party"],
            cooperative_approach=row["cooperative_approach"], purpose=row["purpose"],
            quantity_cap=row["quantity_cap"], vintage_first=row["vintage_first"],
            vintage_last=row["vintage_last"], version=1,
        ).SerializeToString(deterministic=True)  # fmt: skip
        bind.execute(
            versions.insert().values(
                authorization_id=row["authorization_id"], version=1, registry=row["registry"],
                transaction_id=row["transaction_id"], recorded_at=row["granted_at"], body=body,
            )
        )  # fmt: skip


def downgrade() -> None:
    op.drop_table("authorization_versions")
    with op.batch_alter_table("authorizations") as batch:
        for name, _, _ in _NEW_COLUMNS:
            batch.drop_column(name)
