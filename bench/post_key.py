"""What an Idempotency-Key costs a POST, measured in-process and interleaved.

`python -m bench.post_key [--requests N]`: the app in this process (httpx over ASGI, no
sockets), against a fresh database `jambo_bench_post` (BENCH_DATABASE_URL's server, else the
embedded one). POSTs without and with a fresh key alternate one by one, so load from anything
else on the machine falls on both alike; prints the median latency and the median CPU time of
this process per request for each, plus a replay (the same key again).
"""

import argparse
import asyncio
import os
import statistics
import time
import uuid

import asyncpg
import httpx

from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from app.db.engine import driver_dsn, embedded_database_url
from app.main import create_app
from bench.fresh import fresh_database

SECRET = "bench-secret-" + "b" * 40
NAME = "jambo_bench_post"


def body(n: int) -> dict[str, str]:
    return {
        "first_name": "Bench",
        "last_name": "Writer",
        "email": f"post-{n}-{uuid.uuid4().hex[:8]}@example.org",
        "nationality": "KE",
        "dob": "1990-01-01",
        "phone_number": "0712345678",
    }


async def main(requests: int) -> None:
    base = os.environ.get("BENCH_DATABASE_URL") or embedded_database_url(".data", "postgres")
    url = await fresh_database(base, NAME)
    settings = Settings(database_url=url, jwt_secret=SECRET, log_level="WARNING", _env_file=None)  # type: ignore[call-arg]
    token = mint_token(settings, "bench", "staff", STAFF_SCOPES, 3600)
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(settings)
    samples: dict[str, list[tuple[float, float]]] = {"plain": [], "key": [], "replay": []}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:

            async def timed(kind: str, payload: dict[str, str], headers: dict[str, str]) -> None:
                cpu, wall = time.process_time(), time.perf_counter()
                response = await client.post("/api/customers", json=payload, headers=headers)
                spent = (time.perf_counter() - wall, time.process_time() - cpu)
                assert response.status_code == 201, response.text
                samples[kind].append(spent)

            for n in range(-20, requests):  # the first 20 pairs warm up, unmeasured
                key = {**auth, "Idempotency-Key": uuid.uuid4().hex}
                payload = body(n)
                await timed("plain", body(n), auth)
                await timed("key", payload, key)
                await timed("replay", payload, key)
                if n < 0:
                    for kind in samples:
                        samples[kind].clear()
    conn = await asyncpg.connect(driver_dsn(base))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    finally:
        await conn.close()
    print(f"{'POST /api/customers':<28}{'median ms':>10}{'CPU µs':>8}   ({requests} each)")
    for kind, label in (("plain", "without a key"), ("key", "with a key"), ("replay", "replay")):
        wall = statistics.median(s[0] for s in samples[kind]) * 1e3
        cpu = statistics.median(s[1] for s in samples[kind]) * 1e6
        print(f"{label:<28}{wall:>10.2f}{cpu:>8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(main(parser.parse_args().requests))
