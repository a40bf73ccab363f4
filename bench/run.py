"""`make bench`: the service against the floor app on the same machine, in the same run.

Seeds a fresh database with COPY, starts the floor (bench/floor.py) and the service
(`jambo serve`, 1 worker then 2), drives both with wrk over loopback, and prints a table
and, as the last line, `summary: {json}`. Each scenario runs several rounds, alternating
service and floor; figures are medians over the rounds (the bulk upload's: of its batches,
service and floor alternating batch by batch).
"""

import argparse
import asyncio
import datetime as dt
import decimal
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from app.db.engine import driver_dsn, embedded_database_url
from app.ids import render_ulid
from bench.fresh import fresh_database

ROOT = Path(__file__).resolve().parents[1]
SERVICE_PORT, FLOOR_PORT = 8100, 8101
SECRET = "bench-secret-" + "b" * 40
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":%d,"bad_status":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    # CPU time of the service's processes per request: steadier than req/s on a busy machine.
    cpu_us: float = 0.0


def lua_list(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def wrk_script(
    method: str,
    paths: list[str],
    headers: list[str],
    body: str | None = None,
    key_prefix: str | None = None,
) -> str:
    """A wrk script choosing a random path and a random Authorization per request; with
    `key_prefix`, each request also sends a fresh Idempotency-Key."""
    post = ""
    if body is not None:
        post = f"""
local counter = 0
function make_body()
  counter = counter + 1
  return string.format({json.dumps(body)}, tid or 0, counter)
end"""
    key_line = ""
    if key_prefix is not None:
        key_line = f'h["Idempotency-Key"] = string.format("{key_prefix}-%d-%d", tid or 0, counter)'
    return f"""
local paths = {lua_list(paths)}
local auths = {lua_list(headers)}
local tid_seq = 0
function setup(thread) tid_seq = tid_seq + 1; thread:set("tid", tid_seq) end
math.randomseed(os.time())
{post}
request = function()
  local i = math.random(#paths)
  local h = {{["Authorization"] = auths[math.random(#auths)],
             ["Content-Type"] = "application/json"}}
  local b = {"make_body()" if body is not None else "nil"}
  {key_line}
  return wrk.format("{method}", paths[i], h, b)
end
{WRK_DONE}"""


def fresh_script(
    method: str, paths: list[str], headers: list[str], body: str | None, keyed: bool
) -> str:
    """A script for one run: a fresh nonce keeps created e-mail addresses and keys unique."""
    nonce = uuid.uuid4().hex[:10]
    fresh = body.replace("{nonce}", nonce) if body else None
    return wrk_script(method, paths, headers, fresh, f"bench-{nonce}" if keyed else None)


def run_wrk(port: int, script: str, seconds: int, connections: int) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "5s",
                "-s",
                handle.name,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line[len("WRKJSON ") :])
    return Result(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"] + data["bad_status"],
    )


def median_result(results: list[Result]) -> Result:
    return Result(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        cpu_us=statistics.median(r.cpu_us for r in results),
    )


def tree_cpu(proc: subprocess.Popen[bytes]) -> float:
    """User and system CPU seconds of a process and its children so far."""
    total = 0.0
    try:
        root = psutil.Process(proc.pid)
        for p in [root, *root.children(recursive=True)]:
            times = p.cpu_times()
            total += times.user + times.system
    except psutil.Error:
        pass
    return total


class RssWatch:
    """Samples the peak RSS of every process in a tree while it runs."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak_per_process = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                for proc in procs:
                    self.peak_per_process = max(self.peak_per_process, proc.memory_info().rss)
            except psutil.Error:
                pass
            self._stop.wait(0.25)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_per_process / 2**20


@contextmanager
def process(cmd: list[str], env: dict[str, str], port: int, log: Path, cwd: Path = ROOT):
    """Start a server (from `cwd`'s code), wait for it to answer, stop it gracefully
    afterwards; its output is added to `log`."""
    with log.open("a") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"{cmd[0]} did not start; see {log}") from None
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("wrk not found: installing it from the Debian packages", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


async def sample_customers(url: str, count: int) -> list[str]:
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        rows = await conn.fetch("SELECT id FROM customers TABLESAMPLE SYSTEM (5) LIMIT $1", count)
        if len(rows) < count:
            rows = await conn.fetch("SELECT id FROM customers ORDER BY random() LIMIT $1", count)
    finally:
        await conn.close()
    return [render_ulid(r["id"]) for r in rows]


def loyalty_rows(batch: int, start: int) -> list[dict[str, Any]]:
    return [
        {
            "loyalty_id": f"B{start + i}",
            "cardno": str(10_000_000 + i),
            "discount": "5.5",
            "client_name": f"Bench Member {start + i}",
            "client_birthday": "1980-05-17",
            "is_male": i % 2 == 0,
        }
        for i in range(batch)
    ]


FLOOR_UPSERT = """
INSERT INTO loyalty_members (loyalty_id, cardno, discount, client_name, client_birthday, is_male)
SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::text[], $5::date[], $6::bool[])
ON CONFLICT (loyalty_id) DO UPDATE SET cardno = excluded.cardno, discount = excluded.discount,
  client_name = excluded.client_name, client_birthday = excluded.client_birthday,
  is_male = excluded.is_male, updated_at = now()
RETURNING (xmax = 0) AS inserted
"""


async def bulk_pairs(
    token: str, url: str, batches: int, batch: int, start: int
) -> tuple[list[float], list[float]]:
    """Seconds per batch of the service (a POST of new members over HTTP) and of the floor
    (the same JSON parsed in-process, then one array upsert), alternating batch by batch,
    so that both meet the same moments of a shared machine (a checkpoint, another process)."""
    headers = {"Authorization": f"Bearer {token}"}
    service: list[float] = []
    floor: list[float] = []
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{SERVICE_PORT}", timeout=60
        ) as client:
            for number in range(batches):
                body = loyalty_rows(batch, start + 2 * number * batch)
                began = time.perf_counter()
                response = await client.post("/api/v1/loyalty/", json=body, headers=headers)
                service.append(time.perf_counter() - began)
                if response.status_code != 201:
                    raise RuntimeError(
                        f"bulk upload failed: {response.status_code} {response.text[:200]}"
                    )
                body = loyalty_rows(batch, start + (2 * number + 1) * batch)
                began = time.perf_counter()
                rows = json.loads(json.dumps(body))
                await conn.fetch(
                    FLOOR_UPSERT,
                    [r["loyalty_id"] for r in rows],
                    [r["cardno"] for r in rows],
                    [decimal.Decimal(r["discount"]) for r in rows],
                    [r["client_name"] for r in rows],
                    [dt.date.fromisoformat(r["client_birthday"]) for r in rows],
                    [r["is_male"] for r in rows],
                )
                floor.append(time.perf_counter() - began)
    finally:
        await conn.close()
    return service, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 customers, short rounds")
    parser.add_argument("--customers", type=int)
    parser.add_argument(
        "--only",
        help="comma-separated substrings: run only the scenarios whose names contain one "
        "(the floor runs with the v1 GET, the bulk upload with `bulk`)",
    )
    parser.add_argument("--seconds", type=int, help="length of a measured round")
    parser.add_argument("--rounds", type=int, help="measured rounds per scenario")
    args = parser.parse_args()
    only = [o.strip() for o in args.only.split(",")] if args.only else None

    def wanted(name: str) -> bool:
        return only is None or any(o in name for o in only)

    customers = args.customers or (100_000 if args.quick else 1_000_000)
    seconds, rounds, warmup = (3, 2, 1) if args.quick else (10, 3, 3)
    seconds, rounds = args.seconds or seconds, args.rounds or rounds
    bulk_batches = 10 if args.quick else 30
    ensure_wrk()

    base = os.environ.get("BENCH_DATABASE_URL") or embedded_database_url(".data", "postgres")
    began = time.perf_counter()
    url = asyncio.run(fresh_database(base, "jambo_bench", customers, 10_000))
    print(f"seeded {customers:,} customers in {time.perf_counter() - began:.1f}s", file=sys.stderr)
    ids = asyncio.run(sample_customers(url, 2000))

    settings = Settings(jwt_secret=SECRET, _env_file=None)  # type: ignore[call-arg]
    staff = mint_token(settings, "bench", "staff", STAFF_SCOPES, 7200)
    customer_tokens = [mint_token(settings, u, "customer", (), 7200) for u in ids[:300]]
    staff_h = [f"Bearer {staff}"]
    # The creates come from 64 staff identities (integrations), picked at random per request:
    # SPEC caps each caller at 10,000 live Idempotency-Keys, which one identity would pass
    # within a full run's keyed rounds (then 429s, and a count of its keys on every request).
    writers_h = [
        f"Bearer {mint_token(settings, f'bench-{n}', 'staff', STAFF_SCOPES, 7200)}"
        for n in range(64)
    ]
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "JWT_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
        "RUN_MIGRATIONS": "0",
        "FLOOR_DSN": driver_dsn(url),
    }
    logs = Path(tempfile.mkdtemp(prefix="jambo-bench-"))
    py = sys.executable
    floor_cmd = [
        py,
        "-m",
        "uvicorn",
        "bench.floor:app",
        "--port",
        str(FLOOR_PORT),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    cities = "address.city=Nairobi,Mombasa&sortBy=lastName,firstName&pageSize=20"
    post_body = (
        '{"first_name":"Bench","last_name":"Writer","email":"bench-%d-%d-{nonce}'
        '@example.org","nationality":"KE","dob":"1990-01-01","phone_number":"0712345678"}'
    )
    scenarios: list[tuple[str, str, list[str], list[str], str | None, int]] = [
        (
            "GET /api/v1/customers/{id}",
            "GET",
            [f"/api/v1/customers/{u}" for u in ids],
            staff_h,
            None,
            32,
        ),
        ("GET /api/customer/{ulid}", "GET", [f"/api/customer/{u}" for u in ids], staff_h, None, 32),
        (
            "v1 list city filter, sorted, 20",
            "GET",
            [f"/api/v1/customers?{cities}"],
            staff_h,
            None,
            32,
        ),
        ("Jambo list page 1", "GET", ["/api/customers?page=1"], staff_h, None, 32),
        (
            "POST /api/customers",
            "POST",
            ["/api/customers"],
            writers_h,
            post_body,
            16,
        ),
        (
            "POST /api/customers + Idempotency-Key",
            "POST",
            ["/api/customers"],
            writers_h,
            post_body,
            16,
        ),
        (
            "GET /api/v3/customer/",
            "GET",
            ["/api/v3/customer/"] * len(customer_tokens),
            [f"Bearer {t}" for t in customer_tokens],
            None,
            32,
        ),
    ]
    rows: list[tuple[str, int, Result]] = []
    floor_results: list[Result] = []
    service_get: dict[int, Result] = {}
    rss_mb = 0.0
    bulk = {"service": [], "floor": []}  # type: dict[str, list[float]]
    for workers in (1, 2):
        if workers == 2 and not wanted(scenarios[0][0]):
            continue
        service_cmd = [
            py,
            "-m",
            "app.cli",
            "serve",
            "--port",
            str(SERVICE_PORT),
            "--workers",
            str(workers),
            "--no-migrate",
        ]
        with (
            process(service_cmd, env, SERVICE_PORT, logs / f"service{workers}.log") as proc,
            process(floor_cmd, env, FLOOR_PORT, logs / "floor.log"),
        ):
            watch = RssWatch(proc.pid)
            chosen = scenarios if workers == 1 else scenarios[:1]
            for name, method, paths, headers, body, conns in chosen:
                if not wanted(name):
                    continue
                keyed = name.endswith("Idempotency-Key")
                # A short unmeasured run first: connections opened, statements prepared,
                # caches filled, as in a service that has been up for a while.
                run_wrk(
                    SERVICE_PORT, fresh_script(method, paths, headers, body, keyed), warmup, conns
                )
                if name.startswith("GET /api/v1/customers/{id}") and workers == 1:
                    run_wrk(FLOOR_PORT, wrk_script("GET", paths, headers), warmup, conns)
                results = []
                for _ in range(rounds):
                    cpu_before = tree_cpu(proc)
                    result = run_wrk(
                        SERVICE_PORT,
                        fresh_script(method, paths, headers, body, keyed),
                        seconds,
                        conns,
                    )
                    served = max(1.0, result.rps * seconds)
                    result.cpu_us = (tree_cpu(proc) - cpu_before) / served * 1e6
                    results.append(result)
                    if name.startswith("GET /api/v1/customers/{id}") and workers == 1:
                        floor_results.append(
                            run_wrk(FLOOR_PORT, wrk_script("GET", paths, headers), seconds, conns)
                        )
                rows.append((name, workers, median_result(results)))
                r = rows[-1][2]
                print(
                    f"  {name} ({workers} worker(s)): {r.rps:.0f} req/s, p99 {r.p99_ms:.1f} ms,"
                    f" {r.cpu_us:.0f} CPU µs/req, {r.errors} errors",
                    file=sys.stderr,
                )
                if name.startswith("GET /api/v1/customers/{id}"):
                    service_get[workers] = median_result(results)
            if workers == 1 and wanted("bulk"):
                for number in range(rounds):
                    start = number * 2 * bulk_batches * 1000
                    service, floor_s = asyncio.run(
                        bulk_pairs(staff, url, bulk_batches, 1000, start)
                    )
                    bulk["service"] += service
                    bulk["floor"] += floor_s
            rss_mb = max(rss_mb, watch.stop())

    floor = median_result(floor_results) if floor_results else None
    print(
        f"\nJambo benchmark — {customers:,} customers, wrk -t2, {seconds}s × {rounds} rounds, "
        f"medians; {os.cpu_count()} cores"
    )
    print(
        f"{'scenario':<40}{'workers':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU µs':>8}{'errors':>8}"
    )
    for name, workers, r in rows:
        print(
            f"{name:<40}{workers:>8}{r.rps:>10.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{r.cpu_us:>8.0f}{r.errors:>8}"
        )
    if floor is not None:
        print(
            f"{'floor: raw asyncpg GET':<40}{1:>8}{floor.rps:>10.0f}{floor.p50_ms:>9.2f}"
            f"{floor.p99_ms:>9.2f}{floor.errors:>8}"
        )
    summary: dict[str, Any] = {}
    if floor is not None and 1 in service_get:
        summary["get_customer_vs_floor"] = round(service_get[1].rps / floor.rps, 3)
        summary["get_customer_rps"] = round(service_get[1].rps)
        summary["floor_rps"] = round(floor.rps)
    if 2 in service_get:
        summary["get_customer_rps_2_workers"] = round(service_get[2].rps)
    by_name = {n: r for n, w, r in rows if w == 1}
    list_row = next((r for n, r in by_name.items() if n.startswith("v1 list")), None)
    if list_row is not None:
        summary["list_filtered_p99_ms"] = round(list_row.p99_ms, 2)
    create = by_name.get("POST /api/customers")
    with_key = by_name.get("POST /api/customers + Idempotency-Key")
    if create is not None and with_key is not None:
        summary["post_rps"] = round(create.rps)
        summary["post_with_key_rps"] = round(with_key.rps)
        summary["post_key_cost"] = round(1 - with_key.rps / create.rps, 3)
        summary["post_cpu_us"] = round(create.cpu_us)
        summary["post_with_key_cpu_us"] = round(with_key.cpu_us)
    if bulk["service"]:
        # rows/s from the median batch of each (all rounds' batches together)
        bulk_rate = 1000 / statistics.median(bulk["service"])
        bulk_floor_rate = 1000 / statistics.median(bulk["floor"])
        print(
            f"loyalty bulk, batches of 1,000 (median batch): service {bulk_rate:,.0f} rows/s, "
            f"floor {bulk_floor_rate:,.0f} rows/s"
        )
        summary["bulk_rows_per_s"] = round(bulk_rate)
        summary["bulk_vs_floor"] = round(bulk_rate / bulk_floor_rate, 3)
    print(f"peak RSS per service process: {rss_mb:.0f} MB; logs in {logs}")
    summary["rss_mb"] = round(rss_mb, 1)
    summary["customers"] = customers
    summary["errors"] = sum(r.errors for _, _, r in rows)
    print("summary: " + json.dumps(summary))


if __name__ == "__main__":
    main()
