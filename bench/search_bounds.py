"""What the longest accepted filters cost on a million rows, with every plan generic.

`python -m bench.search_bounds [--rows N] [--keep]` makes a database `jambo_bounds` (on
BENCH_DATABASE_URL, else the embedded server), seeds N customers and N loyalty members
(default 1,000,000 each), sets `plan_cache_mode = force_generic_plan` for every connection to
it (what a pooled connection ends with after five runs of a statement, the worst case), and
starts `jambo serve`. It then times, over HTTP, the loyalty `search` and the v1 filters at the
longest values the service accepts (each shaped to make the matcher work: a run of `a` that
fails on its last character) and one value past each bound; 5 runs each, median and max.
Ends with `summary: {json}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import asyncpg
import httpx

from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from app.db.engine import driver_dsn, embedded_database_url
from app.db.migrations import alembic_config
from app.seed import seed_database
from bench.fresh import url_of_database

NAME = "jambo_bounds"
RUNS = 5


async def prepare(base: str, rows: int, keep: bool) -> str:
    """The bench database, seeded (kept from an earlier run with --keep)."""
    conn = await asyncpg.connect(driver_dsn(base))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", NAME)
        if exists and not keep:
            await conn.execute(f'DROP DATABASE "{NAME}" WITH (FORCE)')
        if not exists or not keep:
            await conn.execute(f'CREATE DATABASE "{NAME}"')
    finally:
        await conn.close()
    url = url_of_database(base, NAME)
    from alembic import command

    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        have = await conn.fetchval("SELECT count(*) FROM loyalty_members")
        await conn.execute(f'ALTER DATABASE "{NAME}" SET plan_cache_mode = force_generic_plan')
    finally:
        await conn.close()
    if have < rows:
        began = time.perf_counter()
        await seed_database(url, rows, rows)
        print(f"seeded {rows:,} + {rows:,} in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    return url


async def wait_until_up(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=1) as http:
        for _ in range(300):
            try:
                await http.get("/healthz")
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
    raise RuntimeError("the service did not start")


def cases() -> list[tuple[str, str, dict[str, str], int]]:
    """(name, path, query, expected status): the longest accepted values, then one past."""
    hard = "a" * 199 + "b"
    city = ",".join(["a" * 98 + f"{i:02d}" for i in range(19)])  # 19 × 100 + commas
    return [
        ("loyalty search, 200 chars", "/api/v1/loyalty/", {"search": hard}, 200),
        ("loyalty search, 20 chars", "/api/v1/loyalty/", {"search": "a" * 19 + "b"}, 200),
        ("loyalty search, 201 chars", "/api/v1/loyalty/", {"search": hard + "c"}, 400),
        ("v1 city, 19 values x 100", "/api/v1/customers", {"address.city": city}, 200),
        (
            "v1 city, 20 short values matching nothing",
            "/api/v1/customers",
            {"address.city": ",".join(f"zq{i:02d}" for i in range(20))},
            200,
        ),
        (
            "v1 streetLine1, 10 values x 199",
            "/api/v1/customers",
            {"address.streetLine1": ",".join(["a" * 198 + "b"] * 10)},
            200,
        ),
        ("v1 lastName, 100 chars", "/api/v1/customers", {"lastName": "a" * 100}, 200),
        (
            "v1 postCode, 20 values",
            "/api/v1/customers",
            {"address.postCode": ",".join(str(10**19 + i) for i in range(20))},
            200,
        ),
        ("v1 city, 21 values", "/api/v1/customers", {"address.city": ",".join("a" * 21)}, 400),
        (
            "v1 filters, 2,001 chars in all",
            "/api/v1/customers",
            {"address.streetLine1": ",".join(["a" * 199] * 10), "address.city": "a" * 11},
            400,
        ),
    ]


async def measure(base: str, staff: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {staff}"}
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for name, path, query, expected in cases():
            times, statuses = [], []
            for _ in range(RUNS + 1):  # the first run warms the connection's plan
                start = time.perf_counter()
                response = await http.get(path, params=query, headers=headers)
                times.append(time.perf_counter() - start)
                statuses.append(response.status_code)
            times = times[1:]
            results[name] = {
                "status": sorted(set(statuses)),
                "expected": expected,
                "median_s": round(statistics.median(times), 3),
                "max_s": round(max(times), 3),
            }
            print(json.dumps({name: results[name]}), flush=True)
    return results


# The register's search as it ran before the bound (any length): what a 12,000-character term
# cost, timed on the same data with the same generic plan.
UNBOUNDED = (
    "SELECT count(*) FROM loyalty_members"
    " WHERE client_name ILIKE $1 ESCAPE '\\' OR cardno ILIKE $1 ESCAPE '\\'"
)


async def unbounded(url: str, length: int) -> dict[str, Any]:
    """One run of the unbounded search with a `length`-character term (60 s at most)."""
    conn = await asyncpg.connect(driver_dsn(url), server_settings={"statement_timeout": "60000"})
    try:
        term = "%" + "a" * (length - 1) + "b%"
        statement = await conn.prepare(UNBOUNDED)
        started = time.perf_counter()
        try:
            await statement.fetchval(term)
            outcome = "answered"
        except asyncpg.QueryCanceledError:
            outcome = "cancelled at 60 s"
        return {"seconds": round(time.perf_counter() - started, 2), "outcome": outcome}
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="reuse a seeded database")
    parser.add_argument("--port", type=int, default=8093)
    args = parser.parse_args()
    base_url = os.environ.get("BENCH_DATABASE_URL") or embedded_database_url(".data", "postgres")
    url = await prepare(base_url, args.rows, args.keep)
    secret = "bench-secret-" + "x" * 40
    env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": secret, "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(args.port), "--no-migrate"],
        env=env,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        await wait_until_up(base)
        settings = Settings(jwt_secret=secret, _env_file=None)  # type: ignore[call-arg]
        results = await measure(base, mint_token(settings, "bench", "staff", STAFF_SCOPES, 3600))
    finally:
        server.terminate()
        server.wait(timeout=30)
    before = await unbounded(url, 12_000)
    print(json.dumps({"unbounded search, 12,000 chars (before the bound)": before}))
    accepted = [r["max_s"] for r in results.values() if r["expected"] == 200]
    summary = {
        "rows": args.rows,
        "plan": "force_generic_plan",
        "slowest_accepted_s": max(accepted),
        "all_statuses_as_expected": all(r["status"] == [r["expected"]] for r in results.values()),
        "unbounded_12000_chars_s": before["seconds"],
    }
    print("summary: " + json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
