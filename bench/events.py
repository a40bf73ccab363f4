"""What the change feed costs a create, and how fast its relay publishes (issue 22), the house
way: same machine, same run, interleaved rounds, medians.

`python -m bench.events [--before DIR] [--seconds 5] [--rounds 5] [--events 20000]
[--relay-rounds 3] [--only create|relay]` (PostgreSQL: BENCH_DATABASE_URL, else the embedded
one; RabbitMQ: BENCH_BROKER_URL, default amqp://guest:guest@127.0.0.1:5672/).

1. create: `POST /api/customers` under wrk (16 connections) against `jambo serve` (1 worker)
   without a broker and with EVENTS_BROKER_URL (the relay publishing every create as it
   comes), and with `--before DIR` a checkout of the commit before the feed (its own code and
   migrations, run with this venv). Each has its own database of 20,000 seeded customers;
   rounds rotate between them. Per round: req/s, p99, and CPU time per request of the
   service's processes, of its PostgreSQL backends (the connections to its database, the
   pools fixed at 16) and of RabbitMQ (shared with anyone else using it). With the broker a
   round lasts until the relay has caught up (its cursor at the newest event), so its
   publishing is counted.
2. relay: N events (loyalty bulk uploads of 400 new members, one event each) written with
   no relay, then a service with the broker started: the time until a queue bound to
   `jambo.events` holds all N; then N more written through that service while it relays.
   (400 members keep a request under 64 KiB: a larger one that reaches the server in one
   read is refused with a 431 by app/server.py's header cap, which counts the whole read as
   head.)
"""

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
import psutil

from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from app.db.engine import driver_dsn, embedded_database_url
from bench.fresh import url_of_database
from bench.run import (
    SECRET,
    ensure_wrk,
    fresh_script,
    loyalty_rows,
    process,
    run_wrk,
    tree_cpu,
)

ROOT = Path(__file__).resolve().parents[1]
BROKER = os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
CUSTOMERS = 20_000
BATCH = 400
PORT = 8120
POST_BODY = (
    '{"first_name":"Bench","last_name":"Writer","email":"ev-%d-%d-{nonce}'
    '@example.org","nationality":"KE","dob":"1990-01-01","phone_number":"0712345678"}'
)
LOGS = Path(tempfile.mkdtemp(prefix="jambo-bench-events-"))
SOURCE = f"/jambo-bench-{uuid.uuid4().hex[:8]}"  # tells our events from other publishers'


async def sql(url: str, statement: str, *args: Any) -> Any:
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        return await conn.fetchval(statement, *args)
    finally:
        await conn.close()


def fresh_database(base: str, name: str, tree: Path, customers: int) -> str:
    """A new database migrated by `tree`'s own code (and seeded by it)."""
    asyncio.run(sql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(sql(base, f'CREATE DATABASE "{name}"'))
    url = url_of_database(base, name)
    env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": SECRET}
    commands = (
        [["migrate"], ["seed", "--customers", str(customers)]] if customers else [["migrate"]]
    )
    for command in commands:
        cmd = [sys.executable, "-m", "app.cli", *command]
        subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True)
    return url


@contextlib.contextmanager
def service(tree: Path, url: str, port: int, broker: bool) -> Iterator[subprocess.Popen[bytes]]:
    """`jambo serve` (1 worker) from `tree` on `url`, with or without the broker relay."""
    env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": SECRET, "LOG_LEVEL": "WARNING"}
    env.update(RUN_MIGRATIONS="0", DATA_DIR=str(LOGS / "data"), EVENTS_SOURCE=SOURCE)
    # No overflow connections: they would close mid-round, taking their backends' CPU time
    # out of the PostgreSQL column.
    env.update(DB_POOL_SIZE="16", DB_MAX_OVERFLOW="0")
    env.pop("EVENTS_BROKER_URL", None)
    if broker:
        env["EVENTS_BROKER_URL"] = BROKER
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-migrate"]
    with process(cmd, env, port, LOGS / f"serve-{port}.log", cwd=tree) as proc:
        yield proc


def backend_cpu(base: str, name: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to database `name`."""
    pids = asyncio.run(
        sql(base, "SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = $1", name)
    )
    seconds: dict[int, float] = {}
    for pid in pids or []:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            seconds[pid] = times.user + times.system
    return seconds


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def broker_cpu() -> float:
    """CPU seconds so far of the local RabbitMQ (shared with anyone else using it)."""
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "beam.smp":
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


class Tap:
    """A queue bound to `jambo.events` (every routing key), consumed in a thread of its own;
    keeps the ids of this run's events in arrival order."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.first = self.last = 0.0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError(f"no broker at {BROKER}")

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        connection = await aio_pika.connect(BROKER)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2000)
        exchange = await channel.declare_exchange(
            "jambo.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        await queue.consume(self._take, no_ack=True)
        self._ready.set()
        await self._stop.wait()
        await connection.close()

    async def _take(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if orjson.loads(message.body).get("source") != SOURCE:
            return
        now = time.perf_counter()
        with self._lock:
            self.ids.append(int(str(message.message_id)))
            self.first = self.first or now
            self.last = now

    def count(self) -> int:
        with self._lock:
            return len(self.ids)

    def clear(self) -> None:
        with self._lock:
            self.ids, self.first, self.last = [], 0.0, 0.0

    def wait_for(self, low: int, high: int, limit: float = 300) -> None:
        """Until every id in (low, high] has arrived."""
        deadline = time.monotonic() + limit
        while True:
            with self._lock:
                got = {i for i in self.ids if low < i <= high}
            if len(got) >= high - low:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(got)} of {high - low} events arrived")
            time.sleep(0.02)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def relay_behind(url: str) -> int:
    return int(
        asyncio.run(
            sql(
                url,
                "SELECT (SELECT coalesce(max(id), 0) FROM audit_events) - coalesce((SELECT"
                " cursor::bigint FROM event_relay_cursors WHERE name = 'rabbitmq'), 0)",
            )
        )
    )


def caught_up(url: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while relay_behind(url) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the relay did not catch up")
        time.sleep(0.02)


def order_report(ids: list[int]) -> tuple[int, int]:
    """(duplicates, arrivals below an earlier arrival's id)."""
    behind, highest = 0, 0
    for i in ids:
        behind += i < highest
        highest = max(highest, i)
    return len(ids) - len(set(ids)), behind


def measure_creates(args: argparse.Namespace, base: str, token: str, tap: Tap) -> dict[str, Any]:
    variants: list[tuple[str, Path, bool]] = []
    if args.before:
        variants.append(("before the feed", Path(args.before).resolve(), False))
    variants += [("feed, no broker", ROOT, False), ("feed + broker (relay live)", ROOT, True)]
    names = [f"jambo_bench_events_{i}" for i in range(len(variants))]
    urls = [fresh_database(base, n, v[1], CUSTOMERS) for n, v in zip(names, variants, strict=True)]
    headers = [f"Bearer {token}"]
    rows: dict[str, dict[str, list[float]]] = {v[0]: {} for v in variants}
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(service(tree, url, PORT + i, broker))
            for i, ((_, tree, broker), url) in enumerate(zip(variants, urls, strict=True))
        ]
        for i, (_, _, broker) in enumerate(variants):  # warm-up, unmeasured
            run_wrk(PORT + i, fresh_script("POST", ["/api/customers"], headers, POST_BODY, False),
                    2, 16)  # fmt: skip
            if broker:
                caught_up(urls[i])
        for r in range(args.rounds):
            for k in range(len(variants)):
                i = (k + r) % len(variants)
                label, _, broker = variants[i]
                script = fresh_script("POST", ["/api/customers"], headers, POST_BODY, False)
                db0, cpu0, mq0 = backend_cpu(base, names[i]), tree_cpu(procs[i]), broker_cpu()
                result = run_wrk(PORT + i, script, args.seconds, 16)
                began = time.perf_counter()
                if broker:
                    caught_up(urls[i])
                drain = time.perf_counter() - began
                served = max(1.0, result.rps * args.seconds)
                row = rows[label]
                for key, value in (
                    ("rps", result.rps),
                    ("p99_ms", result.p99_ms),
                    ("cpu_us", (tree_cpu(procs[i]) - cpu0) / served * 1e6),
                    ("db_us", spent(db0, backend_cpu(base, names[i])) / served * 1e6),
                    ("broker_us", (broker_cpu() - mq0) / served * 1e6),
                    ("drain_s", drain),
                    ("errors", result.errors),
                ):
                    row.setdefault(key, []).append(value)
                print(
                    f"  round {r + 1} {label}: {result.rps:.0f} req/s,"
                    f" {row['cpu_us'][-1]:.0f} CPU µs/req (PostgreSQL {row['db_us'][-1]:.0f}),"
                    f" relay caught up {drain:.2f} s after",
                    file=sys.stderr,
                )
    published = [i for i, v in enumerate(variants) if v[2]][0]
    lines = asyncio.run(sql(urls[published], "SELECT count(*) FROM audit_events"))
    for name in names:
        asyncio.run(sql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    duplicates, behind = order_report(tap.ids)
    print(f"\ncreate, wrk 16 connections, {args.seconds}s x {args.rounds} rounds, medians")
    print(
        f"{'':<28}{'req/s':>8}{'p99 ms':>8}{'CPU µs/req':>12}{'PostgreSQL':>12}"
        f"{'RabbitMQ':>10}{'errors':>8}"
    )
    summary: dict[str, Any] = {}
    for label, row in rows.items():
        med = {key: statistics.median(values) for key, values in row.items()}
        print(
            f"{label:<28}{med['rps']:>8.0f}{med['p99_ms']:>8.1f}{med['cpu_us']:>12.0f}"
            f"{med['db_us']:>12.0f}{med['broker_us']:>10.0f}{sum(row['errors']):>8.0f}"
        )
        print(
            "    per round CPU µs/req: " + " / ".join(f"{v:.0f}" for v in row["cpu_us"]),
            file=sys.stderr,
        )
        summary[label] = {key: round(value, 1) for key, value in med.items()}
    # Each round holds every variant, a few seconds apart: the ratio within a round is
    # steadier than either figure on a machine whose other load comes and goes.
    base_label = next(iter(rows))
    for label, row in list(rows.items())[1:]:
        ratios = [
            cpu / first
            for cpu, first in zip(row["cpu_us"], rows[base_label]["cpu_us"], strict=True)
        ]
        ratio = statistics.median(ratios)
        print(
            f"{label} / {base_label}, CPU per request within a round: median {ratio:.3f}"
            f" ({' / '.join(f'{r:.2f}' for r in ratios)})"
        )
        summary[label]["cpu_ratio"] = round(ratio, 3)
    print(
        f"relay: {len(set(tap.ids))} distinct events received of {lines} written,"
        f" {duplicates} duplicates, {behind} arrived after a higher id"
    )
    return summary


async def upload(port: int, token: str, events: int, offset: int) -> float:
    """`events` new loyalty members in bulk uploads of BATCH; seconds taken."""
    headers = {"Authorization": f"Bearer {token}"}
    bodies = [loyalty_rows(BATCH, offset + b * BATCH) for b in range(events // BATCH)]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        began = time.perf_counter()
        for body in bodies:
            answer = await client.post("/api/v1/loyalty/", json=body, headers=headers)
            if answer.status_code != 201:
                raise RuntimeError(f"upload: {answer.status_code} {answer.text[:200]}")
        return time.perf_counter() - began


def measure_relay(args: argparse.Namespace, base: str, token: str, tap: Tap) -> dict[str, Any]:
    name, events = "jambo_bench_events_relay", args.events
    url = fresh_database(base, name, ROOT, 0)
    newest = "SELECT coalesce(max(id), 0) FROM audit_events"
    place = (
        "INSERT INTO event_relay_cursors (name, cursor) VALUES ('rabbitmq', $1)"
        " ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor"
    )
    results: dict[str, list[float]] = {}
    arrivals: list[int] = []
    offset = 0
    with service(ROOT, url, PORT + 10, False):
        for r in range(args.relay_rounds):
            # A backlog: written with no relay, then a service with the broker starts.
            low = int(asyncio.run(sql(url, newest)))
            asyncio.run(sql(url, place, str(low)))
            asyncio.run(upload(PORT + 10, token, events, offset))
            offset += events
            high = int(asyncio.run(sql(url, newest)))
            assert high - low == events, (low, high)
            tap.clear()
            spawned, mq0 = time.perf_counter(), broker_cpu()
            with service(ROOT, url, PORT + 11, True) as relaying:
                # From here on the process only relays (its start-up is not counted).
                cpu0, arrived = tree_cpu(relaying), tap.count()
                tap.wait_for(low, high)
                done = time.perf_counter()
                cpu = tree_cpu(relaying)
                first, last = tap.first, tap.last
                results.setdefault("backlog_from_start_s", []).append(done - spawned)
                results.setdefault("backlog_events_per_s", []).append(events / (last - first))
                results.setdefault("backlog_cpu_us_per_event", []).append(
                    (cpu - cpu0) / max(1, tap.count() - arrived) * 1e6
                )
                results.setdefault("backlog_broker_us", []).append(
                    (broker_cpu() - mq0) / events * 1e6
                )
                arrivals += tap.ids
                # Live: the same number written through this service while it relays.
                low = high
                tap.clear()
                began, cpu0, mq0 = time.perf_counter(), tree_cpu(relaying), broker_cpu()
                took = asyncio.run(upload(PORT + 11, token, events, offset))
                offset += events
                written = time.perf_counter()
                high = int(asyncio.run(sql(url, newest)))
                assert high - low == events, (low, high)
                tap.wait_for(low, high)
                done = time.perf_counter()
                results.setdefault("live_upload_s", []).append(took)
                results.setdefault("live_events_per_s", []).append(events / (done - began))
                results.setdefault("live_lag_after_upload_s", []).append(done - written)
                results.setdefault("live_cpu_us_per_event", []).append(
                    (tree_cpu(relaying) - cpu0) / events * 1e6
                )
                arrivals += tap.ids
            print(
                f"  round {r + 1}: backlog {results['backlog_events_per_s'][-1]:,.0f} events/s"
                f" ({results['backlog_from_start_s'][-1]:.1f} s from spawning the service);"
                f" live {results['live_events_per_s'][-1]:,.0f}"
                f" events/s, the last {results['live_lag_after_upload_s'][-1]:.2f} s after"
                " the upload ended",
                file=sys.stderr,
            )
    asyncio.run(sql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    duplicates, behind = order_report(arrivals)
    med = {key: statistics.median(values) for key, values in results.items()}
    print(f"\nrelay, {events:,} events a round, {args.relay_rounds} rounds, medians")
    for key, values in results.items():
        print(f"  {key:<28}{med[key]:>12,.2f}   ({' / '.join(f'{v:,.2f}' for v in values)})")
    print(f"  {duplicates} duplicates, {behind} arrived after a higher id")
    return {key: round(value, 2) for key, value in med.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", help="a checkout of the commit before the feed")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000, help="a multiple of 400")
    parser.add_argument("--relay-rounds", type=int, default=3)
    parser.add_argument("--only", choices=("create", "relay"))
    args = parser.parse_args()
    ensure_wrk()
    base = os.environ.get("BENCH_DATABASE_URL") or embedded_database_url(".data", "postgres")
    settings = Settings(jwt_secret=SECRET, _env_file=None)  # type: ignore[call-arg]
    token = mint_token(settings, "bench", "staff", STAFF_SCOPES, 7200)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(f"commit {commit}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; logs {LOGS}")
    tap = Tap()
    summary: dict[str, Any] = {}
    try:
        if args.only in (None, "create"):
            summary["create"] = measure_creates(args, base, token, tap)
        tap.clear()
        if args.only in (None, "relay"):
            summary["relay"] = measure_relay(args, base, token, tap)
    finally:
        tap.close()
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    print("summary: " + json.dumps(summary))


if __name__ == "__main__":
    main()
