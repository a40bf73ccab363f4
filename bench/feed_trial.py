"""Does the change feed lose or repeat events under concurrent writers, and how long does a
read take meanwhile? `python -m bench.feed_trial [--seconds 8] [--writers 12] [--readers 3]
[--feed FILE]`.

Writers insert audit lines (each its own transaction, half of them holding it open up to 3
ms after drawing the line id, so that commits land out of id order); readers follow the feed
with `EventFeed.read` from cursor 0, in this process, each with its own watermark. At the
end every reader must have read every committed line once. `--feed FILE` loads `EventFeed`
from another copy of app/events/feed.py (for instance an older commit's, from `git show`).
PostgreSQL: BENCH_DATABASE_URL, else the embedded one; a database `jambo_feed_trial`.
"""

import argparse
import asyncio
import importlib.util
import os
import random
import statistics
import sys
import time
from typing import Any

import asyncpg

from app.db.engine import driver_dsn, embedded_database_url
from app.events.feed import EventFeed
from bench.fresh import drop_database, fresh_database

NAME = "jambo_feed_trial"
LINE = (
    "INSERT INTO audit_events (action, record_type, subject_id, actor, fields)"
    " VALUES ('customer.updated', 'customer', 'X', 'staff:trial', '{}') RETURNING id"
)


class Pool:
    """The three methods of app.db.database.Database the feed uses, on an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def fetchrow_primary(self, sql: str, *args: Any) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(sql, *args)

    async def fetch_primary(self, sql: str, *args: Any) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def fetchval_primary(self, sql: str, *args: Any) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)


def feed_class(path: str | None) -> Any:
    if path is None:
        return EventFeed
    spec = importlib.util.spec_from_file_location("other_feed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["other_feed"] = module
    spec.loader.exec_module(module)
    return module.EventFeed


async def main(args: argparse.Namespace) -> None:
    base = os.environ.get("BENCH_DATABASE_URL") or embedded_database_url(".data", "postgres")
    dsn = driver_dsn(await fresh_database(base, NAME))
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
    feed = feed_class(args.feed)
    committed: set[int] = set()
    stop = time.monotonic() + args.seconds

    async def writer() -> None:
        conn = await asyncpg.connect(dsn)
        while time.monotonic() < stop:
            async with conn.transaction():
                line = await conn.fetchval(LINE)
                if random.random() < 0.5:
                    await asyncio.sleep(random.uniform(0, 0.003))
            committed.add(line)
        await conn.close()

    async def reader() -> tuple[list[int], list[float]]:
        follower, cursor = feed(Pool(pool), "/trial", 30), 0
        seen: list[int] = []
        took: list[float] = []
        while time.monotonic() < stop + 1.5:  # then a moment to catch up
            began = time.monotonic()
            page = await follower.read(cursor, 1000)
            if began < stop:
                took.append(time.monotonic() - began)
            seen += [int(event["id"]) for event in page.events]
            cursor = page.next
        return seen, took

    tasks = [asyncio.create_task(writer()) for _ in range(args.writers)]
    results = await asyncio.gather(*(reader() for _ in range(args.readers)))
    await asyncio.gather(*tasks)
    await pool.close()
    await drop_database(base, NAME)
    print(f"{len(committed):,} lines committed by {args.writers} writers in {args.seconds} s")
    for n, (seen, took) in enumerate(results, 1):
        missing = sorted(committed - set(seen))
        print(
            f"reader {n}: read {len(seen):,}, twice {len(seen) - len(set(seen))},"
            f" missing {len(missing)} {missing[:5]}; {len(took)} reads under load,"
            f" median {statistics.median(took) * 1e3:.1f} ms,"
            f" p90 {statistics.quantiles(took, n=10)[-1] * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--writers", type=int, default=12)
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--feed", help="a feed.py to take EventFeed from instead")
    asyncio.run(main(parser.parse_args()))
