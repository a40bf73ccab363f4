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
from sqlalchemy import (
    BindParameter,
    Label,
    ScalarSelect,
    bindparam,
    column,
    func,
    literal_column,
    select,
)
from sqlalchemy import table as table_clause

from app.db.compiled import compile_statement
from app.db.database import Database

WAIT_LIMIT = 10.0  # seconds a request waits for another's count
CLAIM_TIMEOUT = 30  # seconds after which a claim is considered abandoned

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


def _cached_total(table: BindParameter[str]) -> ScalarSelect[int | None]:
    """The total cached for the key bound as `count_key` while it is current (its generation
    is the table's, and no claim holds it at -1), else NULL: the one test of a cached answer."""
    cache = table_clause("count_cache", column("key"), column("generation"), column("total"))
    # A scalar subquery: evaluated once per query, not once per row it rides along with.
    return (
        select(cache.c.total)
        .where(cache.c.key == bindparam("count_key"))
        .where(cache.c.generation == func.table_generation(table))
        .where(literal_column("total >= 0"))
        .scalar_subquery()
    )


def cached_total_column(table: str) -> Label[int | None]:
    """A column that brings the cache's answer along with another query on `table`."""
    return _cached_total(bindparam("count_table", table)).label("cached_total")


# The table's current generation (for a claim) and the cached answer, if current.
_LOOKUP = compile_statement(
    select(
        func.table_generation(bindparam("count_table")),
        _cached_total(bindparam("count_table")),
    )
)


async def cached_count(
    db: Database, table: str, question: str, count_sql: str, *args: object
) -> int:
    """The answer of `count_sql` (a SELECT count(*) on `table`, parameters `args`), from the
    cache or counted and remembered. `question` names what is counted: it keys the cache."""
    key = cache_key(question)
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        async with db.connect() as conn:
            lookup = _LOOKUP.args({"count_table": table, "count_key": key})
            current, answer = await conn.fetchrow(_LOOKUP.sql, *lookup)
            if answer is not None:
                return int(answer)
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
