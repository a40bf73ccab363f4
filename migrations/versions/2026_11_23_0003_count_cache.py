"""Cached list counts, invalidated by a per-table generation that every write bumps.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE table_generations ("
        " name text CONSTRAINT pk_table_generations PRIMARY KEY,"
        " generation bigint NOT NULL DEFAULT 0)"
    )
    op.execute("INSERT INTO table_generations (name) VALUES ('customers')")
    # Unlogged: a crash only empties the cache.
    op.execute(
        "CREATE UNLOGGED TABLE count_cache ("
        " key text CONSTRAINT pk_count_cache PRIMARY KEY,"
        " generation bigint NOT NULL,"
        " total bigint NOT NULL,"
        " computed_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute(
        "CREATE FUNCTION bump_table_generation() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        "  UPDATE table_generations SET generation = generation + 1 WHERE name = TG_TABLE_NAME;"
        "  RETURN NULL;"
        " END $$"
    )
    op.execute(
        "CREATE TRIGGER trg_customers_generation"
        " AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON customers"
        " FOR EACH STATEMENT EXECUTE FUNCTION bump_table_generation()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER trg_customers_generation ON customers")
    op.execute("DROP FUNCTION bump_table_generation()")
    op.execute("DROP TABLE count_cache")
    op.execute("DROP TABLE table_generations")
