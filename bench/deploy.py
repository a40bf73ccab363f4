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
import sys
import tempfile
import time
from pathlib import Path

from app.cli import migrate_to_head
from app.config import Settings
from app.security import STAFF_SCOPES, mint_token
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
from tests.deploy_support import Cluster, binary, start_pgbouncer, stop

PORT = 8102
SECRET = "bench-secret-" + "d" * 40
CITIES = "address.city=Nairobi,Mombasa&sortBy=lastName,firstName&pageSize=20"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50,000 customers, short rounds")
    args = parser.parse_args()
    customers = 50_000 if args.quick else 200_000
    seconds, rounds = (3, 2) if args.quick else (8, 3)
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
            table = measure(primary, replica, pooled, ids, seconds, rounds)
        finally:
            stop(bouncer)
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
    summary = {
        f"{setup}:{name}": round(r.rps)
        for setup, results in table.items()
        for name, r in results.items()
    }
    summary["errors"] = sum(r.errors for results in table.values() for r in results.values())
    print(f"\nsummary: {json.dumps(summary)}")


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
    table: dict[str, dict[str, Result]] = {}
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(PORT), "--no-migrate"]
    for number, (setup, extra) in enumerate(setups.items()):
        env = {**os.environ, "JWT_SECRET": SECRET, "LOG_LEVEL": "WARNING", "DB_PGBOUNCER": "false"}
        env.pop("DATABASE_READ_URL", None)
        env.update(extra)
        with process(command, env, PORT, logs / f"service{number}.log"):
            time.sleep(2)  # the replica's watcher takes it into use
            table[setup] = {}
            for name, script in scripts.items():
                run_wrk(PORT, script, 1, 32)  # warm-up: connections, statements, count cache
                results = [run_wrk(PORT, script, seconds, 32) for _ in range(rounds)]
                table[setup][name] = median_result(results)
    return table


if __name__ == "__main__":
    main()
