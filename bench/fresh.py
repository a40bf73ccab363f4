"""A throw-away database for a benchmark: dropped if there, created, migrated, seeded (the
tests' own helpers for the first two)."""

from __future__ import annotations

import asyncio

import asyncpg

from app.cli import migrate_to_head
from app.db.engine import driver_dsn
from app.seed import seed_database
from tests.conftest import create_database, drop_database, url_of_database

__all__ = ["drop_database", "fresh_database", "url_of_database"]


async def fresh_database(
    base: str, name: str, customers: int = 0, members: int = 0, analyze: bool = False
) -> str:
    """A new database `name` on `base`'s server, at the newest revision, with `customers`
    and loyalty `members` seeded (then ANALYZEd when asked); returns its URL."""
    await drop_database(base, name)
    url = await create_database(base, name)
    await asyncio.to_thread(migrate_to_head, url)
    if customers or members:
        await seed_database(url, customers, members)
    if analyze:
        conn = await asyncpg.connect(driver_dsn(url))
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
    return url
