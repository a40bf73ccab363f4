"""The schema and the database's own refusals: a schema off head, migrations under live
traffic, statement timeouts, and deadlocks. Each on its own database of the test server."""

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from app.config import Settings
from app.db.migrations import alembic_config, head_revision
from app.main import create_app
from tests.conftest import (
    JAMBO_CUSTOMER,
    JWT_SECRET,
    STAFF,
    _plain,
    create_database,
    drop_database,
    free_port,
    server_url,
)


def _previous_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_revision(head_revision())
    assert head is not None and isinstance(head.down_revision, str)
    return head.down_revision


@pytest.fixture
async def fresh_url() -> AsyncIterator[str]:
    """A new database at head on the test server."""
    base = server_url()
    name = f"jambo_schema_{os.getpid()}_{secrets.token_hex(3)}"
    url = await create_database(base, name)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    yield url
    await drop_database(base, name)


def _serve(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": JWT_SECRET, "SMTP_HOST": ""}
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(free_port()), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


async def test_serve_refuses_a_schema_one_migration_behind_head(fresh_url: str) -> None:
    previous, head = _previous_revision(), head_revision()
    assert head is not None
    await asyncio.to_thread(command.downgrade, alembic_config(fresh_url), previous)
    done = await asyncio.to_thread(_serve, fresh_url, "--no-migrate")
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    assert "refusing to start" in message
    assert f"revision {previous}" in message and f"revision {head}" in message


async def test_serve_refuses_a_schema_ahead_of_this_build(fresh_url: str) -> None:
    conn = await asyncpg.connect(_plain(fresh_url))
    try:
        await conn.execute("UPDATE alembic_version SET version_num = '9999'")
    finally:
        await conn.close()
    done = await asyncio.to_thread(_serve, fresh_url, "--no-migrate")
    assert done.returncode != 0
    assert "9999" in done.stderr and "refusing to start" in done.stderr


def _migrate(url: str, verb: str, target: str, lock_timeout: float) -> tuple[int, str, float]:
    """Run a migration in its own process (as `jambo migrate` would), with a lock timeout."""
    env = {**os.environ, "MIGRATION_LOCK_TIMEOUT_SECONDS": str(lock_timeout)}
    code = (
        "import sys; from alembic import command; from app.db.migrations import alembic_config;"
        f"command.{verb}(alembic_config(sys.argv[1]), sys.argv[2])"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code, url, target], env=env, capture_output=True, text=True
    )
    return done.returncode, done.stderr, time.monotonic() - start


async def test_a_migration_waits_for_a_lock_at_most_its_lock_timeout(fresh_url: str) -> None:
    """A long reader holds `customers`: the migration gives up cleanly instead of queueing
    every later request behind its lock; the reader is unharmed; the schema is unchanged."""
    reader = await asyncpg.connect(_plain(fresh_url))
    try:
        transaction = reader.transaction()
        await transaction.start()
        await reader.fetch("SELECT * FROM customers LIMIT 1")
        code, stderr, _ = await asyncio.to_thread(
            _migrate, fresh_url, "downgrade", _previous_revision(), 1.0
        )
        assert code != 0
        assert "lock timeout" in stderr
        assert await reader.fetchval("SELECT count(*) FROM customers") == 0
        await transaction.commit()
        assert await reader.fetchval("SELECT version_num FROM alembic_version") == head_revision()
    finally:
        await reader.close()


async def test_migrations_under_write_load_never_answer_500(
    fresh_url: str, settings: Settings
) -> None:
    """Down one revision and back up while customers are being created."""
    application = create_app(settings.model_copy(update={"database_url": fresh_url}))
    statuses: list[int] = []
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            stop = asyncio.Event()

            async def writer(n: int) -> None:
                i = 0
                while not stop.is_set():
                    body = {**JAMBO_CUSTOMER, "email": f"load{n}-{i}@example.org"}
                    response = await client.post("/api/customers", json=body, headers=STAFF)
                    statuses.append(response.status_code)
                    i += 1

            writers = [asyncio.create_task(writer(n)) for n in range(4)]
            await asyncio.sleep(0.3)
            config = alembic_config(fresh_url)
            await asyncio.to_thread(command.downgrade, config, _previous_revision())
            await asyncio.to_thread(command.upgrade, config, "head")
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*writers)
    assert statuses and set(statuses) <= {201, 503}, sorted(set(statuses))
    assert statuses.count(201) > 0


async def test_statement_timeout_ends_in_503_for_reads_and_writes(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    """A table locked by someone else for longer than the statement timeout."""
    application = create_app(settings.model_copy(update={"db_statement_timeout_seconds": 1.0}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            transaction = db.transaction()
            await transaction.start()
            await db.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
            try:
                start = time.monotonic()
                responses = await asyncio.gather(
                    c.get("/api/customers", headers=STAFF),
                    c.post("/api/customers", json=JAMBO_CUSTOMER, headers=STAFF),
                    c.get("/api/v1/customers", headers=STAFF),
                )
                elapsed = time.monotonic() - start
            finally:
                await transaction.rollback()
    for r in responses:
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"]
    assert elapsed < 4.0


_DEADLOCK_TRIGGER = """
CREATE SEQUENCE fault_attempts;
CREATE FUNCTION fault_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- A sequence is not rolled back: the first {n} attempts fail as a deadlock would.
  IF nextval('fault_attempts') <= {n} THEN
    RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fault_deadlock BEFORE INSERT ON customers
  FOR EACH ROW EXECUTE FUNCTION fault_deadlock();
"""
_DROP_TRIGGER = """
DROP TRIGGER IF EXISTS fault_deadlock ON customers;
DROP FUNCTION IF EXISTS fault_deadlock();
DROP SEQUENCE IF EXISTS fault_attempts;
"""


@pytest.mark.parametrize(("failures", "status"), [(1, 201), (2, 503)])
async def test_a_deadlock_is_retried_once(
    client: httpx.AsyncClient, db: asyncpg.Connection, failures: int, status: int
) -> None:
    await db.execute(_DEADLOCK_TRIGGER.replace("{n}", str(failures)))
    try:
        response = await client.post("/api/customers", json=JAMBO_CUSTOMER, headers=STAFF)
    finally:
        await db.execute(_DROP_TRIGGER)
    assert response.status_code == status, response.text
    assert await db.fetchval("SELECT count(*) FROM customers") == (1 if status == 201 else 0)
    if status == 503:
        assert response.headers["retry-after"] and response.json()["statusCode"] == 503
