"""the Party-section portal: accounts' own provisional status, the focal-point directory,
the people of each request, passcodes, upload links, documents, account and access
requests, and the portal's audit trail

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
EMAIL = sa.String(254)


def upgrade() -> None:
    op.create_table(
        "account_status",
        sa.Column("account_id", sa.String(40), primary_key=True),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("verified_at", WHEN, nullable=True),
    )
    op.create_table(
        "portal_focal_points",
        sa.Column("email", EMAIL, primary_key=True),
        sa.Column("party", sa.String(3), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
    )
    op.create_table(
        "portal_people",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(16), nullable=False),
        sa.Column("party", sa.String(3), nullable=False),
        sa.Column("role", sa.String(24), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", EMAIL, nullable=False),
        sa.Column("identity_verified", sa.Boolean(), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.UniqueConstraint("request_id", "email", "role", "account_id"),
    )
    op.create_index("ix_portal_people_request_id", "portal_people", ["request_id"])
    op.create_index("ix_portal_people_email", "portal_people", ["email"])
    op.create_table(
        "portal_account_requests",
        sa.Column("request_id", sa.String(16), primary_key=True),
        sa.Column("party", sa.String(3), nullable=False),
        sa.Column("account_type", sa.String(32), nullable=False),
        sa.Column("ars", sa.Boolean(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("representative_name", sa.Text(), nullable=False),
        sa.Column("representative_email", EMAIL, nullable=False),
        sa.Column("requested_by", EMAIL, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("requested_at", WHEN, nullable=False),
    )
    op.create_table(
        "portal_access_requests",
        sa.Column("request_id", sa.String(16), primary_key=True),
        sa.Column("party", sa.String(3), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", EMAIL, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("decided_by", EMAIL, nullable=False),
        sa.Column("requested_at", WHEN, nullable=False),
    )
    op.create_table(
        "portal_passcodes",
        sa.Column("email", EMAIL, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("sent_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )
    op.create_table(
        "portal_upload_links",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(16), nullable=False),
        sa.Column("email", EMAIL, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
    )
    op.create_table(
        "portal_documents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(16), nullable=False),
        sa.Column("party", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("stored_as", sa.Text(), nullable=False),
        sa.Column("uploaded_by", EMAIL, nullable=False),
        sa.Column("uploaded_at", WHEN, nullable=False),
    )
    op.create_index("ix_portal_documents_request_id", "portal_documents", ["request_id"])
    op.create_table(
        "portal_audit",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("actor", EMAIL, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_portal_audit_subject", "portal_audit", ["subject"])


def downgrade() -> None:
    for table in ("portal_audit", "portal_documents", "portal_upload_links", "portal_passcodes",
                  "portal_access_requests", "portal_account_requests", "portal_people",
                  "portal_focal_points", "account_status"):  # fmt: skip
        op.drop_table(table)
