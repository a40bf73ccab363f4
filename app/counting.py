"""Exact counts for list pages, cached in the database until the table next changes.

Counting every match of a broad filter on a large table costs more than the page itself.
A statement-level trigger bumps `table_generations` on every write to the table; a count is
reused while the generation it was computed at is still current, so it is never stale. The
cache lives in PostgreSQL, so every worker and replica shares it.

When many requests miss at once, one of them claims the key (a row with total -1) and
counts; the others wait for its answer instead of all scanning the table together. A claim
whose owner vanished is taken over after `CLAIM_TIMEOUT`; waiters give up waiting after
`WAIT_LIMIT` and count for themselves.
"""

import asyncio
import hashlib
import random
import time
from typing import Any

from sqlalchemy import Select, bindparam, literal_column, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

_DIALECT = postgresql.dialect()
WAIT_LIMIT = 10.0  # seconds a request waits for another's count
CLAIM_TIMEOUT = 30  # seconds after which a claim is considered abandoned

_LOOKUP = text(
    "SELECT g.generation, c.generation AS cached_generation, c.total"
    " FROM table_generations g LEFT JOIN count_cache c ON c.key = :key"
    " WHERE g.name = :table"
)
_CLAIM = text(
    "INSERT INTO count_cache (key, generation, total) VALUES (:key, :generation, -1)"
    " ON CONFLICT (key) DO UPDATE SET generation = excluded.generation, total = -1,"
    " computed_at = now()"
    " WHERE count_cache.generation < excluded.generation"
    f" OR (count_cache.total = -1 AND count_cache.computed_at"
    f" < now() - interval '{CLAIM_TIMEOUT} seconds')"
    " RETURNING 1"
)
_STORE = text(
    "UPDATE count_cache SET generation = :generation, total = :total, computed_at = now()"
    " WHERE key = :key AND generation <= :generation"
)
_PURGE = text("DELETE FROM count_cache WHERE computed_at < now() - interval '1 hour'")


def cache_key(stmt: Select[Any]) -> str:
    """A digest of the statement's SQL and parameters."""
    compiled = stmt.compile(dialect=_DIALECT)
    params = sorted((k, repr(v)) for k, v in compiled.params.items())
    return hashlib.sha256(f"{compiled}|{params}".encode()).hexdigest()


async def cached_count(
    conn: AsyncConnection, table: str, stmt: Select[Any], question: str | None = None
) -> int:
    """`stmt` (a SELECT count(*)) answered from the cache, or run and remembered.

    `question` names what `stmt` counts, when the caller can say so more cheaply than by
    compiling the statement (compiling costs more than the cache look-up it keys).
    """
    key = hashlib.sha256(question.encode()).hexdigest() if question else cache_key(stmt)
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        current, cached_generation, total = (
            await conn.execute(_LOOKUP, {"table": table, "key": key})
        ).one()
        if cached_generation == current and total is not None and total >= 0:
            return int(total)
        # No answer for this generation: claim the key (refused while a live claim stands).
        claimed = await conn.execute(_CLAIM, {"key": key, "generation": current})
        if claimed.first() is not None:
            return await _count_and_store(conn, table, key, stmt)
        if time.monotonic() > deadline:
            return await _count(conn, table, stmt)  # the counter is slow or gone: count too
        await asyncio.sleep(0.05)


async def _count(conn: AsyncConnection, table: str, stmt: Select[Any]) -> int:
    return int((await _count_with_generation(conn, table, stmt))[1])


async def _count_with_generation(
    conn: AsyncConnection, table: str, stmt: Select[Any]
) -> tuple[int, int]:
    generation = (
        select(literal_column("generation"))
        .select_from(text("table_generations"))
        .where(literal_column("name") == bindparam("gen_table", table))
        .scalar_subquery()
    )
    # One statement, one snapshot: the count and the generation it belongs to.
    row = (await conn.execute(select(generation, stmt.scalar_subquery()))).one()
    return int(row[0]), int(row[1])


async def _count_and_store(conn: AsyncConnection, table: str, key: str, stmt: Select[Any]) -> int:
    generation, total = await _count_with_generation(conn, table, stmt)
    await conn.execute(_STORE, {"key": key, "generation": generation, "total": total})
    if random.random() < 0.01:  # keep the cache small: forget keys nobody asked for lately
        await conn.execute(_PURGE)
    return total
