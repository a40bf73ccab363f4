"""A failover under write load: the primary stops, its streaming replica is promoted, and the
service, given both hosts in the repeated `host=` form with target_session_attrs=read-write,
follows the primary. Writers retry each create with the same Idempotency-Key: no 500, no
acknowledged create lost, no key that created two customers."""

import asyncio
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from app.cli import migrate_to_head
from tests.conftest import STAFF, start_service, stop_service
from tests.deploy_support import Cluster

pytestmark = pytest.mark.skipif(
    not Cluster.available(),
    reason="PostgreSQL 15 server binaries are not installed (/usr/lib/postgresql/15/bin)",
)
WRITERS = 6


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    servers = Cluster()
    try:
        migrate_to_head(servers.start_primary())
        servers.start_replica()
        yield servers
    finally:
        servers.stop()


class Tally:
    """What the writers saw."""

    def __init__(self) -> None:
        self.acknowledged: dict[str, str] = {}  # key → the customerId its 201 named
        self.statuses: dict[int | str, int] = {}
        self.retries = 0

    def saw(self, status: int | str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def writer(http: httpx.AsyncClient, tally: Tally, stop_at: float) -> None:
    """Create customers one after another; retry each with its key until it is answered."""
    while time.monotonic() < stop_at:
        key = uuid.uuid4().hex[:24]  # v1 names are at most 30 characters
        body = {"firstName": "Failover", "lastName": key}
        headers = {**STAFF, "Idempotency-Key": key}
        while True:
            try:
                response = await http.post("/api/v1/customers", json=body, headers=headers)
                status: int | str = response.status_code
            except httpx.TransportError as exc:
                status = type(exc).__name__
            tally.saw(status)
            if status == 201:
                tally.acknowledged[key] = response.json()["data"]["customerId"]
                break
            if status not in (503, 409) and isinstance(status, int):
                break  # an answer (a 500 is counted and not retried)
            tally.retries += 1
            await asyncio.sleep(0.2)


async def test_a_failover_costs_503s_only_and_creates_nothing_twice(cluster: Cluster) -> None:
    hosts = f"host=127.0.0.1:{cluster.primary_port}&host=127.0.0.1:{cluster.replica_port}"
    url = f"postgresql+asyncpg://postgres@/jambo?{hosts}&target_session_attrs=read-write"
    proc, base = start_service(
        url, env={"DB_CONNECT_TIMEOUT_SECONDS": "2", "DB_POOL_TIMEOUT_SECONDS": "2"}
    )
    tally = Tally()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            stop_at = time.monotonic() + 12
            writing = [asyncio.create_task(writer(http, tally, stop_at)) for _ in range(WRITERS)]
            await asyncio.sleep(3)
            before = len(tally.acknowledged)
            await asyncio.to_thread(cluster.stop_primary)
            await asyncio.sleep(1)
            await asyncio.to_thread(cluster.promote_replica)
            await asyncio.gather(*writing)
            after = len(tally.acknowledged) - before
            listed = await http.get("/api/v1/customers", headers=STAFF)
    finally:
        stop_service(proc)
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{cluster.replica_port}/jambo")
    try:
        rows = await conn.fetch("SELECT last_name, count(*) AS n FROM customers GROUP BY 1")
    finally:
        await conn.close()
    stored = {r["last_name"]: r["n"] for r in rows}
    print(f"\nfailover: {tally.statuses}, {tally.retries} retries, {len(stored)} stored")
    assert before > 0 and after > 0, tally.statuses  # writes went on after the promotion
    assert tally.statuses.get(500, 0) == 0, tally.statuses
    assert set(tally.statuses) <= {201, 503, 409, "ConnectError", "RemoteProtocolError"}
    lost = [key for key in tally.acknowledged if key not in stored]
    assert lost == []
    assert [key for key, n in stored.items() if n > 1] == []  # no key created twice
    assert listed.status_code == 200
