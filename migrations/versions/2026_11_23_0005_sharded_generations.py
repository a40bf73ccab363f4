"""Table generations in shards: concurrent writers no longer queue on one row.

Every write to `customers` bumped the same `table_generations` row, and held its lock to
the end of the transaction: concurrent writes committed one at a time. Each write now
bumps one of eight rows (chosen by backend), and a table's generation is the array of its
shards, read in one snapshot with whatever it validates. Cached counts are dropped (their
generation changes type); they are recounted on demand.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARDS = 8


def upgrade() -> None:
    op.execute("ALTER TABLE table_generations ADD COLUMN shard smallint NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE table_generations DROP CONSTRAINT pk_table_generations")
    op.execute(
        "ALTER TABLE table_generations ADD CONSTRAINT pk_table_generations"
        " PRIMARY KEY (name, shard)"
    )
    op.execute(
        "INSERT INTO table_generations (name, shard, generation)"
        f" SELECT name, s, 0 FROM table_generations, generate_series(1, {SHARDS - 1}) s"
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION bump_table_generation() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN"
        "  UPDATE table_generations SET generation = generation + 1"
        f"  WHERE name = TG_TABLE_NAME AND shard = pg_backend_pid() % {SHARDS};"
        "  RETURN NULL;"
        " END $$"
    )
    # Within one statement a STABLE function sees that statement's snapshot. PARALLEL SAFE
    # (it only reads): an unsafe function would keep every count it joins from parallel plans.
    op.execute(
        "CREATE FUNCTION table_generation(text) RETURNS bigint[]"
        " LANGUAGE sql STABLE PARALLEL SAFE AS"
        " $$ SELECT array_agg(generation ORDER BY shard) FROM table_generations"
        " WHERE name = $1 $$"
    )
    op.execute("TRUNCATE count_cache")
    op.execute(
        "ALTER TABLE count_cache ALTER COLUMN generation TYPE bigint[] USING ARRAY[generation]"
    )


def downgrade() -> None:
    op.execute("TRUNCATE count_cache")
    op.execute("ALTER TABLE count_cache ALTER COLUMN generation TYPE bigint USING generation[1]")
    op.execute("DROP FUNCTION table_generation(text)")
    op.execute(
        "CREATE OR REPLACE FUNCTION bump_table_generation() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN"
        "  UPDATE table_generations SET generation = generation + 1 WHERE name = TG_TABLE_NAME;"
        "  RETURN NULL;"
        " END $$"
    )
    op.execute(
        "UPDATE table_generations g SET generation = s.total FROM"
        " (SELECT name, sum(generation) AS total FROM table_generations GROUP BY name) s"
        " WHERE g.name = s.name AND g.shard = 0"
    )
    op.execute("DELETE FROM table_generations WHERE shard <> 0")
    op.execute("ALTER TABLE table_generations DROP CONSTRAINT pk_table_generations")
    op.execute(
        "ALTER TABLE table_generations ADD CONSTRAINT pk_table_generations PRIMARY KEY (name)"
    )
    op.execute("ALTER TABLE table_generations DROP COLUMN shard")
