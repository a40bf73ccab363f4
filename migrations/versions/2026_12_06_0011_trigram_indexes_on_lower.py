"""Substring filters compare `lower(column) LIKE (SELECT lower($1))` (app/db/patterns.py):
the trigram indexes (where pg_trgm exists) move from the columns to lower(column), the
expression those filters use. Nothing happens where pg_trgm is not installed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name → (table, column), as migration 0001 made them on the bare column.
TRGM_INDEXES = {
    "ix_customers_city_trgm": ("customers", "address_city"),
    "ix_customers_line1_trgm": ("customers", "address_line1"),
    "ix_customers_line2_trgm": ("customers", "address_line2"),
    "ix_loyalty_members_client_name_trgm": ("loyalty_members", "client_name"),
    "ix_loyalty_members_cardno_trgm": ("loyalty_members", "cardno"),
}


def _has_trgm() -> bool:
    found = (
        op.get_bind()
        .execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"))
        .scalar()
    )
    return bool(found)


def _rebuild(expression: str) -> None:
    if not _has_trgm():
        return
    for name, (table, column) in TRGM_INDEXES.items():
        op.execute(f"DROP INDEX IF EXISTS {name}")
        target = expression.format(column=column)
        op.execute(f"CREATE INDEX {name} ON {table} USING gin ({target} gin_trgm_ops)")


def upgrade() -> None:
    _rebuild("lower({column})")


def downgrade() -> None:
    _rebuild("{column}")
