"""An index for the most common list order: surname, then given name.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # sortBy=lastName,firstName reads this in order and stops after one page, whatever the
    # filter; without it, every row sharing the first surname is sorted again per request.
    op.create_index(
        "ix_customers_lower_last_first_name",
        "customers",
        [sa.text("lower(last_name)"), sa.text("lower(first_name)"), "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_customers_lower_last_first_name", table_name="customers")
