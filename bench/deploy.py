"""`python -m bench.deploy`: what PgBouncer and a read replica cost on the hot reads.

Starts its own PostgreSQL 15 primary (and later a streaming replica, pg_basebackup), seeds
it, and drives `jambo serve` (1 worker) with wrk on the by-id GET and the filtered v1 list:
directly; with DB_PGBOUNCER=true but still direct (statement caches off); through PgBouncer
in transaction mode; and with DATABASE_READ_URL pointing at the replica. Everything runs on
the same machine, so the replica adds no capacity here: what is measured is the routing's
and the pooler's own cost. Prints a table and `summary: {json}`.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import asyncpg

from app.auth.tokens import STAFF_SCOPES, mint_token
from app.cli import migrate_to_head
from app.config import Settings
from app.customers.repository import SELECT_BY_ID
from app.seed import seed_database
from bench.run import (
    Result,
    ensure_wrk,
    median_result,
    process,
    run_wrk,
    sample_customers,
    wrk_script,
)
from tests.conftest import stop_service
from tests.deploy_support import Cluster, binary, start_pgbouncer

PORT = 8102
SECRET = "bench-secret-" + "d" * 40
CITIES = "address.city=Nairobi,Mombasa&sortBy=lastName,firstName&pageSize=20"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50,000 customers, short rounds")
    args = parser.parse_args()
    customers = 50_000 if args.quick else 200_000
    seconds, rounds = (4, 3) if args.quick else (8, 5)
    if not Cluster.available() or binary("pgbouncer") is None:
        sys.exit("needs PostgreSQL 15 server binaries and pgbouncer (Debian packages)")
    ensure_wrk()
    servers = Cluster()
    try:
        primary = servers.start_primary()
        migrate_to_head(primary)
        asyncio.run(seed_database(primary, customers, 0))
        replica = servers.start_replica()
        ids = asyncio.run(sample_customers(primary, 2000))
        bouncer, pooled = start_pgbouncer(primary, pool_size=20)
        try:
            time.sleep(1)
            latency = asyncio.run(
                statement_latency(
                    {
                        "direct, statement cache": (primary, 100),
                        "direct, no statement cache (DB_PGBOUNCER)": (primary, 0),
                        "via PgBouncer, no statement cache": (pooled, 0),
                        "replica, statement cache": (replica, 100),
                    }
                )
            )
            table = measure(primary, replica, pooled, ids, seconds, rounds)
        finally:
            stop_service(bouncer)
    finally:
        servers.stop()
    print(
        f"\nJambo deployment benchmark — {customers:,} customers, 1 worker, wrk -t2 -c32, "
        f"{seconds}s × {rounds} rounds (medians)\n"
    )
    print(f"| setup | {' | '.join(name for name in SCENARIOS)} |")
    print("|---|" + "---|" * len(SCENARIOS))
    for setup, results in table.items():
        cells = [f"{r.rps:.0f} req/s, p99 {r.p99_ms:.1f} ms" for r in results.values()]
        print(f"| {setup} | {' | '.join(cells)} |")
    print("\n| by-id statement, one connection | median µs |\n|---|---|")
    for name, micros in latency.items():
        print(f"| {name} | {micros} |")
    summary: dict[str, float] = {f"statement_us:{name}": v for name, v in latency.items()}
    summary |= {
        f"{setup}:{name}": round(r.rps)
        for setup, results in table.items()
        for name, r in results.items()
    }
    summary["errors"] = sum(r.errors for results in table.values() for r in results.values())
    print(f"\nsummary: {json.dumps(summary)}")


async def statement_latency(urls: dict[str, tuple[str, int]], n: int = 3000) -> dict[str, float]:
    """Median µs of the by-id statement on one connection per setup (URL, statement cache
    size), the setups taking turns in batches of 100: the database side of the cost alone."""
    conns = {
        name: await asyncpg.connect(url.replace("+asyncpg", ""), statement_cache_size=cache)
        for name, (url, cache) in urls.items()
    }
    try:
        first = next(iter(conns.values()))
        ids = [r["id"] for r in await first.fetch("SELECT id FROM customers LIMIT 2000")]
        times: dict[str, list[float]] = {name: [] for name in conns}
        for batch in range(n // 100):
            for name, conn in conns.items():
                for i in range(100):
                    began = time.perf_counter()
                    await conn.fetchrow(SELECT_BY_ID, ids[(batch * 100 + i) % len(ids)])
                    times[name].append(time.perf_counter() - began)
    finally:
        for conn in conns.values():
            await conn.close()
    return {name: round(statistics.median(t) * 1e6) for name, t in times.items()}


SCENARIOS = ("GET /api/v1/customers/{id}", "v1 list, city filter, sorted, 20")


def measure(
    primary: str, replica: str, pooled: str, ids: list[str], seconds: int, rounds: int
) -> dict[str, dict[str, Result]]:
    settings = Settings(jwt_secret=SECRET, _env_file=None)  # type: ignore[call-arg]
    headers = [f"Bearer {mint_token(settings, 'bench', 'staff', STAFF_SCOPES, 7200)}"]
    scripts = {
        SCENARIOS[0]: wrk_script("GET", [f"/api/v1/customers/{u}" for u in ids], headers),
        SCENARIOS[1]: wrk_script("GET", [f"/api/v1/customers?{CITIES}"], headers),
    }
    setups = {
        "direct": {"DATABASE_URL": primary},
        "direct, DB_PGBOUNCER=true": {"DATABASE_URL": primary, "DB_PGBOUNCER": "true"},
        "via PgBouncer (transaction mode)": {"DATABASE_URL": pooled, "DB_PGBOUNCER": "true"},
        "DATABASE_READ_URL = replica": {"DATABASE_URL": primary, "DATABASE_READ_URL": replica},
    }
    logs = Path(tempfile.mkdtemp(prefix="jambo-bench-deploy-"))
    results: dict[str, dict[str, list[Result]]] = {s: {n: [] for n in scripts} for s in setups}
    with ExitStack() as stack:
        # Every setup runs at once (one worker each) and the rounds alternate between them:
        # on a shared machine, each sees the same background load.
        ports = {}
        for number, (setup, extra) in enumerate(setups.items()):
            port = PORT + number
            env = {**os.environ, "JWT_SECRET": SECRET, "LOG_LEVEL": "WARNING"}
            env.pop("DATABASE_READ_URL", None)
            env.update({"DB_PGBOUNCER": "false", **extra})
            command = [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--port",
                str(port),
                "--no-migrate",
            ]
            stack.enter_context(process(command, env, port, logs / f"service{number}.log"))
            ports[setup] = port
        time.sleep(2)  # the replica's watcher takes it into use
        for port in ports.values():  # warm-up: connections, statements, count cache
            for script in scripts.values():
                run_wrk(port, script, 1, 32)
        for _ in range(rounds):
            for setup, port in ports.items():
                for name, script in scripts.items():
                    results[setup][name].append(run_wrk(port, script, seconds, 32))
    return {s: {n: median_result(r) for n, r in by.items()} for s, by in results.items()}


if __name__ == "__main__":
    main()
