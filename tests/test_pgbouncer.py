"""The service behind a real PgBouncer in transaction mode (DB_PGBOUNCER=true)."""

from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.conftest import STAFF, start_service, stop_service
from tests.deploy_support import Load, binary, start_pgbouncer

PGBOUNCER = binary("pgbouncer")
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer is not installed (Debian package `pgbouncer`)"
)


@pytest.fixture(scope="module")
def bouncer(database_url: str) -> Iterator[str]:
    proc, url = start_pgbouncer(database_url)
    yield url
    stop_service(proc)


@pytest.fixture(scope="module")
def service(bouncer: str) -> Iterator[str]:
    proc, base = start_service(bouncer, env={"DB_PGBOUNCER": "true", "DB_POOL_SIZE": "5"})
    yield base
    stop_service(proc)


async def test_a_mixed_concurrent_load_through_pgbouncer_has_no_server_error(
    service: str, bouncer: str
) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        load = Load(client)
        await load.run(workers=16, seconds=20, limit=600)
        assert load.server_errors() == 0, load.statuses
        assert sum(load.statuses.values()) >= 200, load.statuses
        assert load.jambo and load.v1, load.statuses
        # Every acknowledged create is stored and readable through the pooler.
        for ulid in load.jambo[:20]:
            assert (await client.get(f"/api/customer/{ulid}", headers=STAFF)).status_code == 200
    conn = await asyncpg.connect(bouncer.replace("+asyncpg", ""), statement_cache_size=0)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM customers WHERE email = ANY($1::text[])", load.emails
        )
    finally:
        await conn.close()
    assert stored == len(load.jambo)
    print(f"through pgbouncer: {dict(load.statuses)}")  # for -s
