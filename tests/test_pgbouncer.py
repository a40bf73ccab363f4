"""The service behind a real PgBouncer in transaction mode (DB_PGBOUNCER=true)."""

import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.conftest import STAFF, free_port
from tests.deploy_support import Load, binary, serve, shared_dir, stop, unprivileged

PGBOUNCER = binary("pgbouncer")
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer is not installed (Debian package `pgbouncer`)"
)


def start_pgbouncer(database_url: str, pool_size: int = 4) -> tuple[subprocess.Popen[bytes], str]:
    """PgBouncer in transaction mode in front of `database_url`'s server; its URL."""
    url = urlsplit(database_url)
    name = url.path.lstrip("/")
    query = dict(part.split("=", 1) for part in url.query.split("&") if "=" in part)
    host, port = query.get("host") or url.hostname or "127.0.0.1", url.port or 5432
    folder = shared_dir()
    listen = free_port()
    (folder / "users.txt").write_text(f'"{url.username or "postgres"}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{name} = host={host} port={port} dbname={name}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        # Few server connections for many clients: statements of different clients meet
        # on the same server connection, as they do in production.
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
    )
    for path in folder.iterdir():
        path.chmod(0o644)
    assert PGBOUNCER is not None
    proc = subprocess.Popen(
        [PGBOUNCER, str(folder / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **unprivileged(),
    )
    user = url.username or "postgres"
    return proc, f"postgresql+asyncpg://{user}@127.0.0.1:{listen}/{name}"


@pytest.fixture(scope="module")
def bouncer(database_url: str) -> Iterator[str]:
    proc, url = start_pgbouncer(database_url)
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def service(bouncer: str) -> Iterator[str]:
    proc, base = serve(bouncer, DB_PGBOUNCER="true", DB_POOL_SIZE="5")
    yield base
    stop(proc)


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
