"""Exact counts for list pages, cached in the database until the table next changes.

Counting every match of a broad filter on a large table costs more than the page itself.
A statement-level trigger bumps `table_generations` on every write to the table; a count is
reused while the generation it was computed at is still current, so it is never stale. The
cache lives in PostgreSQL, so every worker and replica shares it.
"""

import hashlib
import random
from typing import Any

from sqlalchemy import Select, bindparam, literal_column, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

_DIALECT = postgresql.dialect()

_HIT = text(
    "SELECT c.total FROM count_cache c JOIN table_generations g ON g.name = :table"
    " WHERE c.key = :key AND c.generation = g.generation"
)
_STORE = text(
    "INSERT INTO count_cache (key, generation, total) VALUES (:key, :generation, :total)"
    " ON CONFLICT (key) DO UPDATE SET generation = excluded.generation,"
    " total = excluded.total, computed_at = now()"
    " WHERE count_cache.generation < excluded.generation"
)
_PURGE = text("DELETE FROM count_cache WHERE computed_at < now() - interval '1 hour'")


def cache_key(stmt: Select[Any]) -> str:
    """A digest of the statement's SQL and parameters."""
    compiled = stmt.compile(dialect=_DIALECT)
    params = sorted((k, repr(v)) for k, v in compiled.params.items())
    return hashlib.sha256(f"{compiled}|{params}".encode()).hexdigest()


async def cached_count(conn: AsyncConnection, table: str, stmt: Select[Any]) -> int:
    """`stmt` (a SELECT count(*)) answered from the cache, or run and remembered."""
    key = cache_key(stmt)
    hit = (await conn.execute(_HIT, {"table": table, "key": key})).scalar()
    if hit is not None:
        return int(hit)
    generation = (
        select(literal_column("generation"))
        .select_from(text("table_generations"))
        .where(literal_column("name") == bindparam("gen_table", table))
        .scalar_subquery()
    )
    # One statement, one snapshot: the count and the generation it belongs to.
    row = (await conn.execute(select(generation, stmt.scalar_subquery()))).one()
    generation_now, total = int(row[0]), int(row[1])
    await conn.execute(_STORE, {"key": key, "generation": generation_now, "total": total})
    if random.random() < 0.01:  # keep the cache small: forget keys nobody asked for lately
        await conn.execute(_PURGE)
    return total
