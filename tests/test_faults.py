"""Faults, against a PostgreSQL server this test starts itself (never the shared one).

The server is stopped, killed (-9) and frozen (SIGSTOP) under the running service: every
answer meanwhile is a 503 with Retry-After in the contract's own envelope, never a 500, each
within the configured bounds; and the service recovers when the server is back.
"""

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.cli import migrate_to_head
from app.config import Settings
from app.main import create_app
from tests.conftest import JAMBO_CUSTOMER, STAFF
from tests.throwaway_pg import ThrowawayPostgres

pytest.importorskip("pgserver", reason="pgserver (embedded PostgreSQL) is not installed")

# Short bounds so that each fault costs seconds: connect, pool checkout, statement.
BOUNDS = {
    "db_connect_timeout_seconds": 1.0,
    "db_pool_timeout_seconds": 1.0,
    "db_statement_timeout_seconds": 1.0,
    "db_pool_size": 3,
    "db_max_overflow": 0,
}
# The worst wait: a pooled connection (1) + connecting (1) + a statement the server never
# answers (1 + the client's 2 s margin), plus slack for a busy machine.
SLOWEST = 1.0 + 1.0 + 3.0 + 2.0


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayPostgres]:
    """A throw-away PostgreSQL server with a database migrated to head."""
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc to find the server's processes")
    server = ThrowawayPostgres(tmp_path_factory.mktemp("faults") / "pg")
    try:
        server.start()
        asyncio.run(_create_database(server))
        migrate_to_head(server.url("outage"))
        yield server
    finally:
        server.close()


async def _create_database(server: ThrowawayPostgres) -> None:
    conn = await asyncpg.connect(host=str(server.pgdata), user="postgres")
    try:
        await conn.execute("CREATE DATABASE outage")
    finally:
        await conn.close()


@pytest.fixture
async def service(
    pg: ThrowawayPostgres, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The app over the throw-away server; a customer created; the server running again after."""
    await asyncio.to_thread(pg.start)
    url = pg.url("outage")
    application = create_app(settings.model_copy(update={"database_url": url, **BOUNDS}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as c:
            body = {**JAMBO_CUSTOMER, "email": f"c{time.monotonic_ns()}@example.org"}
            created = await c.post("/api/customers", json=body, headers=STAFF)
            assert created.status_code == 201, created.text
            yield c, created.json()["body"]["ulid"]
            await _recovers(pg, c, f"/api/customer/{created.json()['body']['ulid']}")


async def _recovers(server: ThrowawayPostgres, client: httpx.AsyncClient, path: str) -> None:
    """Once the server runs again, reads and writes succeed within a few seconds."""
    server.signal_all(signal.SIGCONT)
    await asyncio.to_thread(server.start)
    deadline = time.monotonic() + 15
    statuses = []
    while time.monotonic() < deadline:
        statuses.append((await client.get(path, headers=STAFF)).status_code)
        if statuses[-1] == 200:
            break
        await asyncio.sleep(0.3)
    assert statuses[-1] == 200, statuses
    assert set(statuses) <= {200, 503}
    assert (await client.get("/readyz")).status_code == 200


async def _every_route_kind(client: httpx.AsyncClient, ulid: str) -> list[httpx.Response]:
    """Reads and writes on each contract, at once."""
    email = f"w{time.monotonic_ns()}@example.org"
    v1 = {"firstName": "Ann", "lastName": "Lee", "emailAddress": email}
    calls = [
        client.get(f"/api/customer/{ulid}", headers=STAFF),
        client.get("/api/customers", headers=STAFF),
        client.post("/api/customers", json={**JAMBO_CUSTOMER, "email": email}, headers=STAFF),
        client.put(f"/api/customer/{ulid}", json=JAMBO_CUSTOMER, headers=STAFF),
        client.get("/api/v1/customers", headers=STAFF),
        client.post("/api/v1/customers", json=v1, headers=STAFF),
        client.get("/api/v1/loyalty/", headers=STAFF),
        client.post(
            "/api/v1/loyalty/",
            json={"loyalty_id": email[:12], "client_name": "Ann", "client_birthday": "1990-01-01"},
            headers=STAFF,
        ),
    ]
    return list(await asyncio.gather(*calls))


def _assert_clean_503s(responses: list[httpx.Response]) -> None:
    for r in responses:
        where = f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}"
        assert r.status_code == 503, where
        assert r.headers.get("retry-after"), where
        body = r.json()
        path = r.request.url.path
        if path.startswith("/api/customer"):  # Jambo envelope
            assert body["statusCode"] == 503, where
        elif path.startswith("/api/v1/loyalty"):  # the register's {"detail": …}
            assert "detail" in body, where
        else:  # v1's error object
            assert "statusCode" not in body and body, where


async def _timed(client: httpx.AsyncClient, ulid: str) -> tuple[list[httpx.Response], float]:
    start = time.monotonic()
    responses = await _every_route_kind(client, ulid)
    return responses, time.monotonic() - start


async def test_stopped_server_gives_clean_503s_and_the_service_recovers(
    pg: ThrowawayPostgres, service: tuple[httpx.AsyncClient, str]
) -> None:
    client, ulid = service
    await asyncio.to_thread(pg.stop)
    responses, elapsed = await _timed(client, ulid)
    _assert_clean_503s(responses)
    assert elapsed < SLOWEST
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["retry-after"]
    assert (await client.get("/healthz")).status_code == 200


async def test_killed_server_gives_clean_503s_and_the_service_recovers(
    pg: ThrowawayPostgres, service: tuple[httpx.AsyncClient, str]
) -> None:
    client, ulid = service
    await asyncio.to_thread(pg.kill)
    responses, elapsed = await _timed(client, ulid)
    _assert_clean_503s(responses)
    assert elapsed < SLOWEST
    assert (await client.get("/readyz")).status_code == 503


async def test_frozen_server_every_wait_is_bounded(
    pg: ThrowawayPostgres, service: tuple[httpx.AsyncClient, str]
) -> None:
    client, ulid = service
    # Warm both pools: a statement cut short on a pooled connection is the case that hung
    # (asyncpg waits for the frozen server to acknowledge the cancel before reusing it).
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get(f"/api/customer/{ulid}", headers=STAFF)).status_code == 200
    pg.signal_all(signal.SIGSTOP)
    try:
        start = time.monotonic()
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and time.monotonic() - start < 2.0
        responses, elapsed = await _timed(client, ulid)
        _assert_clean_503s(responses)
        assert elapsed < SLOWEST
    finally:
        pg.signal_all(signal.SIGCONT)
