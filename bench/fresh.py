"""A throw-away database for a benchmark: dropped if there, created, migrated, seeded."""

from __future__ import annotations

import asyncio

import asyncpg

from app.cli import migrate_to_head
from app.seed import seed_database


def plain(url: str) -> str:
    """asyncpg's form of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def fresh_database(
    base: str, name: str, customers: int = 0, members: int = 0, analyze: bool = False
) -> str:
    """A new database `name` on `base`'s server, at the newest revision, with `customers`
    and loyalty `members` seeded (then ANALYZEd when asked); returns its URL."""
    conn = await asyncpg.connect(plain(base))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    head, _, tail = base.partition("?")
    url = head.rsplit("/", 1)[0] + f"/{name}" + (f"?{tail}" if tail else "")
    await asyncio.to_thread(migrate_to_head, url)
    if customers or members:
        await seed_database(url, customers, members)
    if analyze:
        conn = await asyncpg.connect(plain(url))
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
    return url
