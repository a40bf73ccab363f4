"""The whole store: customers, loyalty members, deletion tokens, audit, API clients, codes.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Substring filters get trigram GIN indexes where pg_trgm can be installed; the embedded
# server has no pg_trgm, and the same ILIKE queries then run without them.
TRGM_INDEXES = {
    "ix_customers_city_trgm": ("customers", "address_city"),
    "ix_customers_line1_trgm": ("customers", "address_line1"),
    "ix_customers_line2_trgm": ("customers", "address_line2"),
    "ix_loyalty_members_client_name_trgm": ("loyalty_members", "client_name"),
    "ix_loyalty_members_cardno_trgm": ("loyalty_members", "cardno"),
}


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("first_name", sa.String(100), nullable=False),
        sa.Column("middle_name", sa.String(100)),
        sa.Column("last_name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("phone_number", sa.String(20)),
        sa.Column("nationality", sa.String(2)),
        sa.Column("dob", sa.Date()),
        sa.Column("gender", sa.String(30)),
        sa.Column("passport_number", sa.String(50)),
        sa.Column("national_id_number", sa.String(50)),
        sa.Column("language", sa.String(10), server_default="en", nullable=False),
        sa.Column("address_line1", sa.String(200)),
        sa.Column("address_line2", sa.String(200)),
        sa.Column("address_city", sa.String(100)),
        sa.Column("address_state", sa.String(100)),
        sa.Column("address_post_code", sa.String(20)),
        sa.Column("address_country", sa.String(100)),
        *_timestamps(),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )
    op.create_index("uq_customers_lower_email", "customers", [sa.text("lower(email)")], unique=True)
    op.create_index(
        "ix_customers_lower_first_name", "customers", [sa.text("lower(first_name)"), "id"]
    )
    op.create_index(
        "ix_customers_lower_last_name", "customers", [sa.text("lower(last_name)"), "id"]
    )
    op.create_index("ix_customers_updated_at", "customers", ["updated_at"])
    op.create_index("ix_customers_address_post_code", "customers", ["address_post_code"])

    op.create_table(
        "loyalty_members",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("loyalty_id", sa.String(50), nullable=False, unique=True),
        sa.Column("cardno", sa.String(20)),
        sa.Column("discount", sa.Numeric(20, 4)),
        sa.Column("client_name", sa.String(200)),
        sa.Column("client_birthday", sa.Date()),
        sa.Column("is_male", sa.Boolean()),
        sa.Column(
            "customer_id",
            UUID(as_uuid=True),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            index=True,
        ),
        *_timestamps(),
    )
    op.create_index("ix_loyalty_members_cardno", "loyalty_members", ["cardno"])
    op.create_index("ix_loyalty_members_client_name", "loyalty_members", ["client_name"])

    op.create_table(
        "deletion_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column(
            "customer_id",
            UUID(as_uuid=True),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
    )
    op.create_table(
        "api_clients",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scopes", sa.String(500), server_default="", nullable=False),
        sa.Column("revoked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "email_codes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "customer_id",
            UUID(as_uuid=True),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("code_hash", sa.LargeBinary(32), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
    )

    bind = op.get_bind()
    has_trgm = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if has_trgm:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, (table, column) in TRGM_INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON {table} USING gin ({column} gin_trgm_ops)")


def downgrade() -> None:
    for name in TRGM_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_table("email_codes")
    op.drop_table("api_clients")
    op.drop_table("audit_events")
    op.drop_table("deletion_tokens")
    op.drop_table("loyalty_members")
    op.drop_table("customers")
