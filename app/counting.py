"""Exact counts for list pages, cached in the database until the table next changes.

Counting every match of a broad filter on a large table costs more than the page itself.
A statement-level trigger bumps the table's generation on every write; a count is reused
while the generation it was computed at is still current, so it is never stale. A
generation is an array of per-backend shards (migration 0005), so that concurrent writers
do not queue on one row; `table_generation(name)` reads it in the caller's snapshot. The
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

import asyncpg
from sqlalchemy import Label, bindparam, column, func, literal_column, select
from sqlalchemy import table as table_clause

from app.database import Database

WAIT_LIMIT = 10.0  # seconds a request waits for another's count
CLAIM_TIMEOUT = 30  # seconds after which a claim is considered abandoned

_LOOKUP = (
    "SELECT table_generation($2), c.generation, c.total"
    " FROM (SELECT) AS one LEFT JOIN count_cache c ON c.key = $1"
)
_CLAIM = (
    "INSERT INTO count_cache (key, generation, total) VALUES ($1, $2, -1)"
    " ON CONFLICT (key) DO UPDATE SET generation = excluded.generation, total = -1,"
    " computed_at = now()"
    " WHERE count_cache.generation < excluded.generation"
    " OR (count_cache.total = -1 AND count_cache.computed_at"
    f" < now() - interval '{CLAIM_TIMEOUT} seconds')"
    " RETURNING 1"
)
_STORE = (
    "UPDATE count_cache SET generation = $2, total = $3, computed_at = now()"
    " WHERE key = $1 AND generation <= $2"
)
_PURGE = "DELETE FROM count_cache WHERE computed_at < now() - interval '1 hour'"


def cache_key(question: str) -> str:
    """The cache's key for a question (a description of what is counted)."""
    return hashlib.sha256(question.encode()).hexdigest()


def cached_total_column(table: str) -> Label[int | None]:
    """A column that brings the cache's answer along with another query on `table`: the
    total cached for the key bound as `count_key` if it is current, else NULL."""
    cache = table_clause("count_cache", column("key"), column("generation"), column("total"))
    current = func.table_generation(bindparam("count_table", table))
    # A scalar subquery: evaluated once per query, not once per row.
    return (
        select(cache.c.total)
        .where(cache.c.key == bindparam("count_key"), cache.c.generation == current)
        .where(literal_column("total >= 0"))  # (a claim in progress holds -1)
        .scalar_subquery()
        .label("cached_total")
    )


def current_total(
    current: list[int], cached_generation: list[int] | None, total: int | None
) -> int | None:
    """The cached total when it is still current, else None."""
    if cached_generation == current and total is not None and total >= 0:
        return int(total)
    return None


async def cached_count(
    db: Database, table: str, question: str, count_sql: str, *args: object
) -> int:
    """The answer of `count_sql` (a SELECT count(*) on `table`, parameters `args`), from the
    cache or counted and remembered. `question` names what is counted: it keys the cache."""
    key = cache_key(question)
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        async with db.connect() as conn:
            current, cached_generation, total = await conn.fetchrow(_LOOKUP, key, table)
            answer = current_total(current, cached_generation, total)
            if answer is not None:
                return answer
            # No answer for this generation: claim the key (refused while a live claim stands).
            if await conn.fetchval(_CLAIM, key, current) is not None:
                generation, total = await _count(conn, table, count_sql, args)
                await conn.execute(_STORE, key, generation, total)
                if random.random() < 0.01:  # keep the cache small: forget keys nobody asks for
                    await conn.execute(_PURGE)
                return total
            if time.monotonic() > deadline:  # the counter is slow or gone: count too
                return (await _count(conn, table, count_sql, args))[1]
        # Wait for the counter holding no connection: the read pool stays free for others.
        await asyncio.sleep(0.05)


async def _count(
    conn: asyncpg.Connection, table: str, count_sql: str, args: tuple[object, ...]
) -> tuple[list[int], int]:
    """The count and the generation it belongs to, in one statement (one snapshot)."""
    row = await conn.fetchrow(
        f"SELECT table_generation(${len(args) + 1}), ({count_sql})", *args, table
    )
    return list(row[0]), int(row[1])
