"""What shared metrics files cost the hot path: the by-id GET in-process, in memory vs shared.

`python -m bench.metrics [--requests N] [--rounds R]`: a fresh database `jambo_bench_metrics`
(BENCH_DATABASE_URL's server, else the embedded one) with 5,000 customers. Each round runs the
app twice in a fresh process (prometheus_client picks where its values live when it is
imported): metrics in memory (no PROMETHEUS_MULTIPROC_DIR: one worker, as before) and in a
shared directory (as every worker of `jambo serve --workers 2` keeps them), the order
alternating between rounds so that the machine's other load falls on both alike. A process
drives the app over ASGI (httpx, no sockets) with GET /api/v1/customers/{id} and reports the
median CPU time of the process per request and the CPU time of the measured block over its
requests; it also times what the middleware does per request for the metrics alone (one
count, one latency observation, `timeit`). Medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from typing import Any

import asyncpg
import httpx

from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from app.db.engine import driver_dsn, embedded_database_url
from app.ids import render_ulid
from bench.fresh import drop_database, fresh_database

SECRET = "bench-secret-" + "b" * 40
NAME = "jambo_bench_metrics"
MODES = ("memory", "shared")


async def child(url: str, requests: int) -> dict[str, float]:
    """One process's measurements (metrics where its environment says)."""
    from app.main import create_app
    from app.metrics import shared_dir
    from tests.conftest import edge_alone

    settings = Settings(database_url=url, jwt_secret=SECRET, log_level="WARNING", _env_file=None)  # type: ignore[call-arg]
    auth = {"Authorization": f"Bearer {mint_token(settings, 'bench', 'staff', STAFF_SCOPES, 3600)}"}
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        rows = await conn.fetch("SELECT id FROM customers ORDER BY random() LIMIT $1", requests)
    finally:
        await conn.close()
    paths = [f"/api/v1/customers/{render_ulid(r['id'])}" for r in rows]
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            for n in range(100):  # warm-up: connections, statement caches, metric series
                assert (await http.get(paths[n % len(paths)], headers=auth)).status_code == 200
            per_request: list[float] = []
            block = time.process_time()
            for path in paths:
                cpu = time.process_time()
                response = await http.get(path, headers=auth)
                per_request.append(time.process_time() - cpu)
                assert response.status_code == 200, response.text
            block = time.process_time() - block
    middleware = edge_alone(app)
    observe = middleware._observe  # the metrics' share of the middleware, nothing else
    calls = 100_000
    seconds = min(
        timeit.repeat(
            lambda: observe("GET", "/api/v1/customers/{customerId}", "200", 0.004),
            number=calls,
            repeat=5,
        )
    )
    return {
        "shared": float(shared_dir() is not None),
        "cpu_us": statistics.median(per_request) * 1e6,
        "block_cpu_us": block / len(paths) * 1e6,
        "observe_us": seconds / calls * 1e6,
    }


def run_child(url: str, requests: int, mode: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    folder = tempfile.mkdtemp(prefix="jambo-bench-metrics-") if mode == "shared" else None
    if folder:
        env["PROMETHEUS_MULTIPROC_DIR"] = folder
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.metrics", "--child", url, "--requests", str(requests)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    if result["shared"] != (mode == "shared"):
        raise SystemExit(f"a {mode} process measured the other mode")
    return result


async def main(requests: int, rounds: int) -> None:
    base = os.environ.get("BENCH_DATABASE_URL") or embedded_database_url(".data", "postgres")
    url = await fresh_database(base, NAME, 5_000)
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    try:
        for r in range(rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                runs[mode].append(await asyncio.to_thread(run_child, url, requests, mode))
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    finally:
        await drop_database(base, NAME)
    summary: dict[str, Any] = {}
    print(f"GET /api/v1/customers/{{id}}, in-process, {requests} requests x {rounds} rounds")
    print(f"{'CPU µs':<34}{'memory':>9}{'shared':>9}{'+µs':>8}")
    for key, label in (
        ("cpu_us", "per request (median)"),
        ("block_cpu_us", "per request (block / requests)"),
        ("observe_us", "the middleware's count + latency"),
    ):
        memory, shared = (statistics.median(run[key] for run in runs[m]) for m in MODES)
        print(f"{label:<34}{memory:>9.1f}{shared:>9.1f}{shared - memory:>8.1f}")
        rounds_text = " / ".join(f"{run[key]:.1f}" for m in MODES for run in runs[m])
        print(f"{'':<4}rounds (memory, then shared): {rounds_text}")
        summary[key] = {"memory": round(memory, 1), "shared": round(shared, 1)}
    print("summary: " + json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(asyncio.run(child(args.child, args.requests))))
    else:
        asyncio.run(main(args.requests, args.rounds))
