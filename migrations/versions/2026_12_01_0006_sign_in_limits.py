"""Sign-in limits per customer across codes, and the server's own hashing key.

`sign_in_limits` keeps the times of wrong code guesses and mailed codes per customer
(every worker and replica sees the same counts); `server_keys` keeps the random keys that
e-mail-code and client-secret hashes are made with (JWT_SECRET is public in RS256 mode).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_limits",
        sa.Column(
            "customer_id",
            UUID(as_uuid=True),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "wrong_guesses", ARRAY(sa.DateTime(timezone=True)), server_default="{}", nullable=False
        ),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.Column(
            "codes_mailed", ARRAY(sa.DateTime(timezone=True)), server_default="{}", nullable=False
        ),
    )
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("key", sa.LargeBinary(64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_table("server_keys")
    op.drop_table("sign_in_limits")
