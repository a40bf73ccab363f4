"""Sign-in limits per (customer, client IP) beside the address-wide row (client `*`); a
pending change of sign-in address per customer; codes no longer count their own tries (a
client's guesses since a code was mailed do).

The limits counted so far (an hour's worth at most) are dropped with the old table.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMES = postgresql.ARRAY(sa.DateTime(timezone=True))


def _limits_table(per_client: bool) -> None:
    key = ["customer_id", "client"] if per_client else ["customer_id"]
    op.create_table(
        "sign_in_limits",
        sa.Column("customer_id", postgresql.UUID(as_uuid=True), nullable=False),
        *([sa.Column("client", sa.String(45), nullable=False)] if per_client else []),
        sa.Column("wrong_guesses", _TIMES, server_default="{}", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("codes_mailed", _TIMES, server_default="{}", nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_sign_in_limits_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*key, name="pk_sign_in_limits"),
    )


def upgrade() -> None:
    op.drop_table("sign_in_limits")
    _limits_table(per_client=True)
    op.drop_column("email_codes", "attempts")
    op.create_table(
        "address_changes",
        sa.Column("customer_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("new_email", sa.String(254), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(32), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_address_changes_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name="pk_address_changes"),
    )


def downgrade() -> None:
    op.drop_table("address_changes")
    op.add_column(
        "email_codes",
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
    )
    op.drop_table("sign_in_limits")
    _limits_table(per_client=False)
