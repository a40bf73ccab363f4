"""A real gateway: nginx under a path prefix in front of two `jambo serve` replicas."""

import asyncio
import subprocess
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.conftest import STAFF, free_port, start_service, stop_service
from tests.deploy_support import Load, binary, shared_dir, wait_for

NGINX = binary("nginx")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian package)")
HOST = "gw.example.test"
MEMBER = {
    "loyalty_id": "gw-1",
    "cardno": "71",
    "discount": "5",
    "client_name": "Achieng",
    "client_birthday": "1990-01-02",
    "is_male": False,
}


def nginx_config(folder: str, listen: int, upstreams: list[int]) -> str:
    """The gateway: TLS ends here in production (so it says https), the prefix is stripped,
    a connection refused by one replica is retried on the other, and an idle connection to
    a replica is dropped by nginx before the replica would close it (KEEP_ALIVE_TIMEOUT_SECONDS,
    5 s): otherwise a POST sent on a connection the replica is closing is answered 502."""
    servers = "".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams)
    temp = "".join(
        f"{kind}_temp_path {folder}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
pid {folder}/nginx.pid; error_log {folder}/error.log; worker_processes 1;
events {{ worker_connections 256; }}
http {{
  access_log off; {temp}
  upstream jambo {{ {servers} keepalive 16; keepalive_timeout 4s; }}
  server {{
    listen 127.0.0.1:{listen};
    location /jambo/ {{
      proxy_pass http://jambo/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_next_upstream error timeout;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
"""


@pytest.fixture(scope="module")
def gateway(database_url: str) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    replicas = [
        start_service(
            database_url,
            env={"ROOT_PATH": "/jambo", "FORWARDED_ALLOW_IPS": "127.0.0.1", "ALLOWED_HOSTS": HOST},
        )
        for _ in range(2)
    ]
    folder = shared_dir()
    listen = free_port()
    ports = [int(base.rsplit(":", 1)[1]) for _, base in replicas]
    (folder / "nginx.conf").write_text(nginx_config(str(folder), listen, ports))
    assert NGINX is not None
    proxy = subprocess.Popen(
        [NGINX, "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{listen}/jambo"
    wait_for(f"{base}/healthz", proxy)
    yield base, [proc for proc, _ in replicas]
    stop_service(proxy)
    for proc, _ in replicas:
        stop_service(proc)


async def test_prefix_forwarded_headers_links_location_and_docs(
    gateway: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    base, _ = gateway
    async with httpx.AsyncClient(base_url=base, headers={"Host": HOST}, timeout=10) as client:
        created = await client.post("/api/v1/loyalty/", json=MEMBER, headers=STAFF)
        assert created.status_code == 201, created.text
        assert created.headers["location"] == f"https://{HOST}/jambo/api/v1/loyalty/gw-1/"
        page = (await client.get("/api/v1/loyalty/?page_size=1", headers=STAFF)).json()
        assert page["results"][0]["url"].startswith(f"https://{HOST}/jambo/api/v1/loyalty/")
        docs = await client.get("/docs")
        assert "/jambo/openapi.json" in docs.text
        assert (await client.get("/openapi.json")).status_code == 200
        deleted = await client.delete("/api/v1/loyalty/gw-1/", headers=STAFF)
        assert deleted.status_code in (200, 204)
        # Requests are spread over both replicas.
        upstreams = {(await client.get("/healthz")).headers["x-upstream"] for _ in range(10)}
        assert len(upstreams) == 2, upstreams


async def test_a_replica_killed_mid_load_loses_no_acknowledged_write(
    gateway: tuple[str, list[subprocess.Popen[bytes]]], database_url: str
) -> None:
    base, replicas = gateway
    async with httpx.AsyncClient(base_url=base, headers={"Host": HOST}, timeout=30) as client:
        load = Load(client)
        # Bound by time, not by a count: the kill must land while requests flow (a count a
        # fast machine finished before it left the gateway's cached connections to a dead
        # replica, and the next phase's first POSTs on them answered 502).
        running = asyncio.create_task(load.run(workers=8, seconds=8, limit=100_000))
        while sum(load.statuses.values()) < 200:
            await asyncio.sleep(0.05)
        replicas[0].kill()  # no graceful shutdown: requests in flight there are lost
        await running
        # Only what was in flight on the killed replica may have failed.
        assert load.server_errors() <= 8, load.statuses
        before, errors = sum(load.statuses.values()), load.server_errors()
        start = time.monotonic()
        await load.run(workers=8, seconds=5, limit=300)
        # Afterwards the gateway serves everything from the replica left.
        assert time.monotonic() - start < 20
        assert load.server_errors() == errors, load.statuses
        assert sum(load.statuses.values()) - before >= 50, load.statuses
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM customers WHERE email = ANY($1::text[])", load.emails
        )
    finally:
        await conn.close()
    assert stored == len(load.emails) > 0
    print(f"gateway: {dict(load.statuses)}, {stored} acknowledged creates stored")  # for -s
