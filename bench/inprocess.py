"""CPU time per request of the service's own code, in-process, without sockets or an HTTP
client: each request is one call of the ASGI application with a prepared scope, so what is
measured is the middleware, routing, auth, the handler, the database client and rendering
(PostgreSQL's own time is in another process and not counted).

`python -m bench.inprocess [--requests N] [--profile SCENARIO]`: a fresh database
`jambo_bench_cpu` (BENCH_DATABASE_URL's server, else the embedded one) with 2,000 customers;
the scenarios run interleaved, one request each in turn, so the machine's other load falls on
all alike; prints the median CPU µs per request of each. `--profile` writes a cProfile of one
scenario to /tmp/jambo-SCENARIO.prof (top functions printed).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from app.db.engine import driver_dsn, embedded_database_url
from app.main import create_app
from bench.fresh import fresh_database

SECRET = "bench-secret-" + "c" * 40
NAME = "jambo_bench_cpu"


class Driver:
    """Calls the ASGI app as a server would, for one request at a time."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        path, _, query = path.partition("?")
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"host", b"localhost"))
        if body:
            raw.append((b"content-length", str(len(body)).encode()))
            raw.append((b"content-type", b"application/json"))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


def customer_body() -> bytes:
    return orjson.dumps(
        {
            "first_name": "Bench",
            "last_name": "Writer",
            "email": f"cpu-{uuid.uuid4().hex}@example.org",
            "nationality": "KE",
            "dob": "1990-01-01",
            "phone_number": "0712345678",
        }
    )


Request = tuple[str, str, dict[str, str], bytes]


def scenarios(ids: list[str], token: str) -> dict[str, Callable[[int], Request]]:
    auth = {"authorization": f"Bearer {token}"}
    return {
        "GET v1 by id": lambda n: ("GET", f"/api/v1/customers/{ids[n % len(ids)]}", auth, b""),
        "GET jambo by id": lambda n: ("GET", f"/api/customer/{ids[n % len(ids)]}", auth, b""),
        "POST jambo": lambda n: ("POST", "/api/customers", auth, customer_body()),
        "POST jambo + key": lambda n: (
            "POST",
            "/api/customers",
            {**auth, "idempotency-key": uuid.uuid4().hex},
            customer_body(),
        ),
    }


async def main(requests: int, profile: str | None) -> None:
    base = os.environ.get("BENCH_DATABASE_URL") or embedded_database_url(".data", "postgres")
    url = await fresh_database(base, NAME, 2000)
    settings = Settings(database_url=url, jwt_secret=SECRET, log_level="WARNING", _env_file=None)  # type: ignore[call-arg]
    token = mint_token(settings, "bench", "staff", STAFF_SCOPES, 3600)
    conn = await asyncpg.connect(driver_dsn(url))
    from app.ids import render_ulid

    ids = [render_ulid(r["id"]) for r in await conn.fetch("SELECT id FROM customers LIMIT 500")]
    await conn.close()
    app = create_app(settings)
    cases = scenarios(ids, token)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    async with app.router.lifespan_context(app):
        driver = Driver(app)
        profiler = cProfile.Profile() if profile else None
        for n in range(-50, requests):
            for name, make in cases.items():
                method, path, headers, body = make(n)
                watch = profiler is not None and name == profile and n >= 0
                if watch:
                    profiler.enable()  # type: ignore[union-attr]
                started = time.process_time()
                status, answer = await driver.request(method, path, headers, body)
                spent = time.process_time() - started
                if watch:
                    profiler.disable()  # type: ignore[union-attr]
                assert status < 300, (name, status, answer[:200])
                if n >= 0:
                    samples[name].append(spent)
    print(f"{'scenario':<22}{'CPU µs/req (median)':>22}   ({requests} each, interleaved)")
    for name, times in samples.items():
        print(f"{name:<22}{statistics.median(times) * 1e6:>22.0f}")
    if profiler is not None and profile is not None:
        out = f"/tmp/jambo-{profile.replace(' ', '-')}.prof"
        profiler.dump_stats(out)
        pstats.Stats(out).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--profile", default=None, help="a scenario name to profile")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.profile))
