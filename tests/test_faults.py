"""Faults, against a PostgreSQL server this test starts itself (never the shared one)."""

import asyncio
import time
from pathlib import Path

import httpx
import pgserver
from pgserver._commands import pg_ctl

from app.cli import migrate_to_head
from app.config import Settings
from app.main import create_app
from tests.conftest import JAMBO_CUSTOMER, STAFF


async def test_database_outage_gives_clean_503s_and_the_service_recovers(
    tmp_path: Path, settings: Settings
) -> None:
    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="delete")
    try:
        server.psql("CREATE DATABASE outage;")
        url = f"postgresql+asyncpg://postgres@/outage?host={server.pgdata}"
        await asyncio.to_thread(migrate_to_head, url)
        application = create_app(settings.model_copy(update={"database_url": url}))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                created = await client.post("/api/customers", json=JAMBO_CUSTOMER, headers=STAFF)
                assert created.status_code == 201
                path = f"/api/customer/{created.json()['body']['ulid']}"

                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
                down = await client.get(path, headers=STAFF)
                assert down.status_code == 503
                assert down.json()["statusCode"] == 503
                write = await client.post(
                    "/api/customers",
                    json={**JAMBO_CUSTOMER, "email": "b@example.org"},
                    headers=STAFF,
                )
                assert write.status_code == 503 and write.json()["statusCode"] == 503
                assert (await client.get("/readyz")).status_code == 503
                assert (await client.get("/healthz")).status_code == 200

                await asyncio.to_thread(server.ensure_postgres_running)
                deadline = time.monotonic() + 15
                statuses = []
                while time.monotonic() < deadline:
                    statuses.append((await client.get(path, headers=STAFF)).status_code)
                    if statuses[-1] == 200:
                        break
                    await asyncio.sleep(0.5)
                assert statuses[-1] == 200, statuses
                assert set(statuses) <= {200, 503}
                assert (await client.get("/readyz")).status_code == 200
    finally:
        server.cleanup()
