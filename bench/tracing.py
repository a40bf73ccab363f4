"""What tracing costs a request: CPU per request with tracing off and on, in-process.

`python -m bench.tracing [--requests N] [--rounds R]`: a fresh database `jambo_bench_tracing`
(BENCH_DATABASE_URL's server, else the embedded one) with 5,000 customers; an OTLP/HTTP
receiver in this process (tests/otlp_receiver.py: it decodes nothing, only counts the spans
that arrive, as a collector on the same host would take them). Each round runs the app twice
in a fresh process, tracing off (no OTEL_* variable) and on (OTLP http/protobuf to the receiver,
sampler always_on, default batching), the order alternating between rounds, so the machine's
other load falls on both alike. A process drives the app over ASGI (httpx, no sockets) with
three requests: the by-id GET (one statement on the raw pool), the v1 list with a filter (the
raw pool's page-and-count statement), and a create (SQLAlchemy Core, the audit line included).

For each it reports the median CPU time of the process per request (the request's own path:
spans started, attributes set, ended) and the CPU time of the whole measured block divided by
its requests, with the exporter flushed inside the block (so the batch thread's encoding and
POSTs are paid for too); medians over the rounds, and the ratio on/off. With `--wrk SECONDS`
it then also serves the by-id GET with `jambo serve` (one worker) under wrk, tracing off, on,
and on with `parentbased_traceidratio` 0.1, three rounds in rotating order: req/s, p99 and
the service's CPU µs per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from app.db.engine import driver_dsn, embedded_database_url
from app.ids import render_ulid
from bench.fresh import drop_database, fresh_database
from tests.otlp_receiver import Receiver

SECRET = "bench-secret-" + "b" * 40
NAME = "jambo_bench_tracing"
SCENARIOS = (
    "GET /api/v1/customers/{id}",
    "GET /api/v1/customers?address.city=…",
    "POST /api/customers",
)


def new_customer(n: int) -> dict[str, str]:
    return {
        "first_name": "Bench",
        "last_name": "Tracer",
        "email": f"trace-{n}-{uuid.uuid4().hex[:8]}@example.org",
        "nationality": "KE",
        "dob": "1990-01-01",
        "phone_number": "0712345678",
    }


async def child(url: str, requests: int) -> dict[str, dict[str, float]]:
    """One process's measurements (tracing as its environment says)."""
    from app import tracing
    from app.main import create_app

    settings = Settings(database_url=url, jwt_secret=SECRET, log_level="WARNING", _env_file=None)  # type: ignore[call-arg]
    auth = {"Authorization": f"Bearer {mint_token(settings, 'bench', 'staff', STAFF_SCOPES, 3600)}"}
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        rows = await conn.fetch("SELECT id FROM customers ORDER BY random() LIMIT $1", requests)
    finally:
        await conn.close()
    ids = [render_ulid(r["id"]) for r in rows]
    app = create_app(settings)
    results: dict[str, dict[str, float]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:

            async def call(scenario: str, n: int) -> None:
                if scenario == SCENARIOS[0]:
                    response = await http.get(
                        f"/api/v1/customers/{ids[n % len(ids)]}", headers=auth
                    )
                elif scenario == SCENARIOS[1]:
                    response = await http.get(
                        "/api/v1/customers?address.city=Nairobi&sortBy=lastName&pageSize=20",
                        headers=auth,
                    )
                else:
                    response = await http.post("/api/customers", json=new_customer(n), headers=auth)
                assert response.status_code in (200, 201), response.text

            for scenario in SCENARIOS:
                for n in range(-50, 0):  # warm-up: connections, statement caches, count cache
                    await call(scenario, n)
                tracing.flush()
                per_request: list[float] = []
                block_start = time.process_time()
                for n in range(requests):
                    cpu = time.process_time()
                    await call(scenario, n)
                    per_request.append(time.process_time() - cpu)
                tracing.flush()  # the batch thread's work belongs to these requests
                block = time.process_time() - block_start
                results[scenario] = {
                    "cpu_us": statistics.median(per_request) * 1e6,
                    "block_cpu_us": block / requests * 1e6,
                }
    return results


def run_child(url: str, requests: int, traced: bool, endpoint: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if traced:
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_TRACES_SAMPLER="always_on",
            OTEL_SERVICE_NAME="jambo-bench",
        )
    out = subprocess.run(
        [sys.executable, "-m", "bench.tracing", "--child", url, "--requests", str(requests)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def served(url: str, rounds: int, seconds: int, endpoint: str) -> dict[str, list[Any]]:
    """`jambo serve` (one worker) under wrk (the by-id GET, 32 connections), tracing off, on
    (always_on) and on with a tenth of the traces sampled, in rotating order: req/s, p99 and
    the service's CPU µs per request, per round."""
    from bench.run import ensure_wrk, process, run_wrk, tree_cpu, wrk_script

    ensure_wrk()
    settings = Settings(jwt_secret=SECRET, _env_file=None)  # type: ignore[call-arg]
    token = mint_token(settings, "bench", "staff", STAFF_SCOPES, 3600)

    async def sample() -> list[str]:
        conn = await asyncpg.connect(driver_dsn(url))
        try:
            rows = await conn.fetch("SELECT id FROM customers ORDER BY random() LIMIT 2000")
        finally:
            await conn.close()
        return [render_ulid(r["id"]) for r in rows]

    paths = [f"/api/v1/customers/{u}" for u in asyncio.run(sample())]
    script = wrk_script("GET", paths, [f"Bearer {token}"])
    port = 8102
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-migrate"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base.update(DATABASE_URL=url, JWT_SECRET=SECRET, LOG_LEVEL="WARNING", RUN_MIGRATIONS="0")
    log = Path(tempfile.mkdtemp(prefix="jambo-bench-tracing-")) / "service.log"
    samplers = {"off": None, "always_on": "always_on", "ratio_0.1": "parentbased_traceidratio"}
    results: dict[str, list[Any]] = {mode: [] for mode in samplers}
    for r in range(rounds):
        modes = list(samplers)
        for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
            env = dict(base)
            sampler = samplers[mode]
            if sampler is not None:
                env.update(
                    OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                    OTEL_TRACES_SAMPLER=sampler,
                    OTEL_TRACES_SAMPLER_ARG="0.1",
                    OTEL_SERVICE_NAME="jambo-bench",
                )
            with process(cmd, env, port, log) as proc:
                run_wrk(port, script, 2, 32)  # warm-up, unmeasured
                cpu = tree_cpu(proc)
                result = run_wrk(port, script, seconds, 32)
                result.cpu_us = (tree_cpu(proc) - cpu) / (result.rps * seconds) * 1e6
            results[mode].append(result)
        print(f"wrk round {r + 1}/{rounds} done", file=sys.stderr)
    return results


async def main(requests: int, rounds: int, wrk_seconds: int) -> None:
    base = os.environ.get("BENCH_DATABASE_URL") or embedded_database_url(".data", "postgres")
    url = await fresh_database(base, NAME, 5_000, analyze=True)
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    spans_per_run: list[int] = []
    wrk: dict[str, list[Any]] = {}
    try:
        with Receiver(keep=False) as receiver:
            for r in range(rounds):
                for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                    before = receiver.span_count
                    runs[mode].append(run_child(url, requests, mode == "on", receiver.endpoint))
                    if mode == "on":
                        spans_per_run.append(receiver.span_count - before)
                    elif receiver.span_count != before:
                        raise SystemExit("a process without OTEL_* variables exported spans")
                print(f"round {r + 1}/{rounds} done", file=sys.stderr)
            if wrk_seconds:
                wrk = await asyncio.to_thread(served, url, 3, wrk_seconds, receiver.endpoint)
    finally:
        await drop_database(base, NAME)
    summary: dict[str, Any] = {}
    print(f"{'scenario':<42}{'off µs':>8}{'on µs':>8}{'+µs':>6}{'ratio':>7}   (request / block)")
    for scenario in SCENARIOS:
        row = []
        for key in ("cpu_us", "block_cpu_us"):
            off = statistics.median(run[scenario][key] for run in runs["off"])
            on = statistics.median(run[scenario][key] for run in runs["on"])
            row.append((off, on))
            summary[f"{scenario} {key}"] = {"off": round(off), "on": round(on)}
        (r_off, r_on), (b_off, b_on) = row
        print(
            f"{scenario:<42}{r_off:>8.0f}{r_on:>8.0f}{r_on - r_off:>6.0f}{r_on / r_off:>7.2f}"
            f"   block {b_off:.0f} → {b_on:.0f} ({b_on / b_off:.2f})"
        )
    per_process = len(SCENARIOS) * (requests + 50)
    spans = statistics.median(spans_per_run)
    print(f"spans exported per traced process: {spans:.0f} ({spans / per_process:.2f} per request)")
    summary["spans_per_request"] = round(spans / per_process, 2)
    if wrk_seconds:
        print("jambo serve, 1 worker, wrk 32 connections, GET /api/v1/customers/{id}, medians:")
        for mode in wrk:
            rps = statistics.median(x.rps for x in wrk[mode])
            p99 = statistics.median(x.p99_ms for x in wrk[mode])
            cpu = statistics.median(x.cpu_us for x in wrk[mode])
            errors = sum(x.errors for x in wrk[mode])
            print(
                f"  tracing {mode:<8} {rps:>7.0f} req/s  p99 {p99:>6.1f} ms  {cpu:>5.0f} CPU µs/req"
                f"  ({errors} errors; rounds: {', '.join(f'{x.rps:.0f}' for x in wrk[mode])})"
            )
            summary[f"wrk_{mode}"] = {
                "rps": round(rps),
                "p99_ms": round(p99, 1),
                "cpu_us": round(cpu),
            }
    print("summary: " + json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wrk", type=int, default=0, metavar="SECONDS", help="also under wrk")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(asyncio.run(child(args.child, args.requests))))
    else:
        asyncio.run(main(args.requests, args.rounds, args.wrk))
