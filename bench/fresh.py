"""A throw-away database for a benchmark: dropped if there, created, migrated, seeded."""

from __future__ import annotations

import asyncio

import asyncpg

from app.cli import migrate_to_head
from app.seed import seed_database


def plain(url: str) -> str:
    """asyncpg's form of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def database_url(base: str, name: str) -> str:
    """The URL of database `name` on `base`'s server (its query string kept)."""
    head, _, tail = base.partition("?")
    return head.rsplit("/", 1)[0] + f"/{name}" + (f"?{tail}" if tail else "")


async def _on_server(base: str, *statements: str) -> None:
    conn = await asyncpg.connect(plain(base))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def drop_database(base: str, name: str) -> None:
    """Drop database `name` on `base`'s server, if it is there (its sessions closed)."""
    await _on_server(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def fresh_database(
    base: str, name: str, customers: int = 0, members: int = 0, analyze: bool = False
) -> str:
    """A new database `name` on `base`'s server, at the newest revision, with `customers`
    and loyalty `members` seeded (then ANALYZEd when asked); returns its URL."""
    await _on_server(
        base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )
    url = database_url(base, name)
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
