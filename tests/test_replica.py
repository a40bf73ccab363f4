"""DATABASE_READ_URL: hot reads from a real streaming replica, and when they stay on the primary.

The test starts its own primary and a replica made with pg_basebackup (PostgreSQL 15's
binaries), then pauses the replica's WAL replay so that what the replica serves can be told
apart from what the primary holds.
"""

import asyncio
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from app.cli import migrate_to_head
from tests.conftest import (
    JAMBO_CUSTOMER,
    STAFF,
    auth,
    free_port,
    make_token,
    start_service,
    stop_service,
)
from tests.deploy_support import Cluster

pytestmark = pytest.mark.skipif(
    not Cluster.available(),
    reason="PostgreSQL 15 server binaries are not installed (/usr/lib/postgresql/15/bin)",
)
OTHER = auth(make_token("staff-2"))  # another caller, who wrote nothing


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, str, Cluster]]:
    """(primary URL, replica URL, the cluster), the database migrated before the copy."""
    servers = Cluster()
    try:
        primary = servers.start_primary()
        migrate_to_head(primary)
        yield primary, servers.start_replica(), servers
    finally:
        servers.stop()


async def on_replica(url: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def replayed(replica: str, ulid_sql: str, email: str) -> None:
    """Wait until the replica holds the customer with `email`."""
    deadline = time.monotonic() + 20
    while not await on_replica(replica, ulid_sql, email):
        assert time.monotonic() < deadline, "the replica never caught up"
        await asyncio.sleep(0.1)


HAS = "SELECT count(*) FROM customers WHERE email = $1"


async def create(client: httpx.AsyncClient, email: str) -> str:
    body = {**JAMBO_CUSTOMER, "email": email}
    response = await client.post("/api/customers", json=body, headers=STAFF)
    assert response.status_code == 201, response.text
    return str(response.json()["body"]["ulid"])


@pytest.fixture(scope="module")
def service(cluster: tuple[str, str, Cluster]) -> Iterator[str]:
    primary, replica, _ = cluster
    proc, base = start_service(
        primary, env={"DATABASE_READ_URL": replica, "DB_READ_MAX_LAG_SECONDS": "3600"}
    )
    yield base
    stop_service(proc)


async def test_hot_reads_come_from_the_replica_and_a_writers_reads_from_the_primary(
    cluster: tuple[str, str, Cluster], service: str
) -> None:
    primary, replica, _ = cluster
    async with (
        httpx.AsyncClient(base_url=service, timeout=10) as writer,
        httpx.AsyncClient(base_url=service, timeout=10) as other,
    ):
        first = await create(writer, "first@example.org")
        await replayed(replica, HAS, "first@example.org")
        await on_replica(replica, "SELECT pg_wal_replay_pause()")
        try:
            second = await create(writer, "second@example.org")
            assert "jambo-primary" in writer.cookies
            # Another caller's plain read is served by the (paused) replica: not there yet.
            await asyncio.sleep(1.5)
            assert (await other.get(f"/api/customer/{second}", headers=OTHER)).status_code == 404
            assert (await other.get(f"/api/customer/{first}", headers=OTHER)).status_code == 200
            listed = await other.get("/api/v1/customers", headers=OTHER)
            # (A first page carries the count cache, an unlogged table: it runs on the primary.)
            assert listed.status_code == 200, listed.text
            assert listed.json()["data"]["totalElements"] == 2
            # A conditional read compares with the newest state: the primary's.
            url = f"/api/v1/customers/{second}"
            fresh = await other.get(url, headers={**OTHER, "If-None-Match": '"stale"'})
            assert fresh.status_code == 200 and fresh.headers["etag"]
            # The writer reads its own write: by its cookie, and without the cookie by the
            # same credentials on this process.
            assert (await writer.get(f"/api/customer/{second}", headers=STAFF)).status_code == 200
            async with httpx.AsyncClient(base_url=service, timeout=10) as same_caller:
                got = await same_caller.get(f"/api/customer/{second}", headers=STAFF)
                assert got.status_code == 200
        finally:
            await on_replica(replica, "SELECT pg_wal_replay_resume()")
        await replayed(replica, HAS, "second@example.org")
        assert (await other.get(f"/api/customer/{second}", headers=OTHER)).status_code == 200
    stored = await on_replica(primary, "SELECT count(*) FROM customers")
    assert stored == 2


async def test_a_lagging_replica_is_left_for_the_primary(cluster: tuple[str, str, Cluster]) -> None:
    primary, replica, _ = cluster
    proc, base = start_service(
        primary, env={"DATABASE_READ_URL": replica, "DB_READ_MAX_LAG_SECONDS": "0.5"}
    )
    try:
        async with (
            httpx.AsyncClient(base_url=base, timeout=10) as writer,
            httpx.AsyncClient(base_url=base, timeout=10) as other,
        ):
            await on_replica(replica, "SELECT pg_wal_replay_pause()")
            try:
                ulid = await create(writer, "lagging@example.org")
                await asyncio.sleep(2)  # the watcher sees the replica fall behind
                got = await other.get(f"/api/customer/{ulid}", headers=OTHER)
                assert got.status_code == 200
            finally:
                await on_replica(replica, "SELECT pg_wal_replay_resume()")
    finally:
        stop_service(proc)


async def test_an_absent_or_lost_replica_is_left_for_the_primary(
    cluster: tuple[str, str, Cluster], service: str
) -> None:
    primary, replica, servers = cluster
    nowhere = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/jambo"
    proc, base = start_service(primary, env={"DATABASE_READ_URL": nowhere})
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for path in ("/api/customers", "/api/v1/customers", "/readyz"):
                assert (await client.get(path, headers=OTHER)).status_code == 200
    finally:
        stop_service(proc)
    # The replica dies under a running service: its reads move to the primary.
    servers.stop_replica()
    async with httpx.AsyncClient(base_url=service, timeout=10) as client:
        statuses = [
            (await client.get("/api/v1/customers", headers=OTHER)).status_code for _ in range(5)
        ]
    assert statuses == [200] * 5
