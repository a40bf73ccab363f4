"""A silent or slow mail server costs the deletion requests only, within one deadline.

The mail servers here are started by the tests themselves: one that accepts connections and
never says a word, one that answers every SMTP step after a pause.
"""

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx

from app.config import Settings
from app.main import create_app
from tests.conftest import JAMBO_CUSTOMER, ORIGIN, STAFF, customer_auth

DEADLINE = 1.5  # SMTP_TIMEOUT_SECONDS in these tests


class FakeSmtp:
    """A loopback SMTP server: silent (never answers), or answering each step after `delay`."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.connections = 0
        self.peak = 0
        self.messages: list[str] = []
        self._open = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def _reply(self, writer: asyncio.StreamWriter, line: str) -> None:
        assert self.delay is not None
        await asyncio.sleep(self.delay)
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open += 1
        self.peak = max(self.peak, self._open)
        self._writers.append(writer)
        try:
            if self.delay is None:
                await reader.read()  # silent: wait for the client to give up
                return
            await self._reply(writer, "220 slow.example ESMTP")
            while line := await reader.readline():
                verb = line.decode(errors="replace").strip().upper()
                if verb.startswith(("EHLO", "HELO")):
                    await self._reply(writer, "250 slow.example")
                elif verb.startswith("DATA"):
                    await self._reply(writer, "354 go ahead")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    self.messages.append(data.decode(errors="replace"))
                    await self._reply(writer, "250 queued")
                elif verb.startswith("QUIT"):
                    await self._reply(writer, "221 bye")
                    return
                else:
                    await self._reply(writer, "250 ok")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._open -= 1
            writer.close()


@asynccontextmanager
async def fake_smtp(delay: float | None) -> AsyncIterator[tuple[FakeSmtp, int]]:
    smtp = FakeSmtp(delay)
    server = await asyncio.start_server(smtp.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield smtp, port
    finally:
        server.close()
        for writer in smtp._writers:
            writer.close()


@asynccontextmanager
async def service(
    settings: Settings, port: int, **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app over the test database with its mail going to `port`; a small write pool."""
    update = {
        "smtp_port": port,
        "smtp_timeout_seconds": DEADLINE,
        "db_pool_size": 3,
        "db_max_overflow": 0,
        **changes,
    }
    application = create_app(settings.model_copy(update=update))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as c:
            yield c


async def _customers(client: httpx.AsyncClient, n: int, tag: str) -> list[str]:
    ulids = []
    for i in range(n):
        body = {**JAMBO_CUSTOMER, "email": f"{tag}{i}@example.org"}
        created = await client.post("/api/customers", json=body, headers=STAFF)
        assert created.status_code == 201, created.text
        ulids.append(created.json()["body"]["ulid"])
    return ulids


async def _request_deletion(client: httpx.AsyncClient, ulid: str) -> tuple[int, float, Any]:
    start = time.monotonic()
    response = await client.post(
        f"/api/customer/{ulid}/delete/request", json={"origin": ORIGIN}, headers=customer_auth(ulid)
    )
    return response.status_code, time.monotonic() - start, response


async def _unrelated_writes(client: httpx.AsyncClient, n: int, tag: str) -> list[tuple[int, float]]:
    out = []
    for i in range(n):
        start = time.monotonic()
        body = {**JAMBO_CUSTOMER, "email": f"{tag}{i}@example.org"}
        response = await client.post("/api/customers", json=body, headers=STAFF)
        out.append((response.status_code, time.monotonic() - start))
        await asyncio.sleep(0.05)
    return out


async def _live_tokens(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM deletion_tokens WHERE used_at IS NULL"))


async def test_silent_mail_server_costs_only_the_deletion_requests(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    """(`client` is requested for its clean-up of the rows created here.)"""
    async with fake_smtp(None) as (smtp, port), service(settings, port) as c:
        ulids = await _customers(c, 30, "silent")
        baseline = [t for _, t in await _unrelated_writes(c, 5, "before")]
        deletions = [asyncio.create_task(_request_deletion(c, u)) for u in ulids]
        writes = await _unrelated_writes(c, 10, "during")
        results = await asyncio.gather(*deletions)

    # Unrelated writes neither failed nor queued behind the mail (3 pool connections for 30
    # hung sends would have stalled them for the whole deadline).
    assert [status for status, _ in writes] == [201] * 10
    assert statistics.median(t for _, t in writes) < max(0.5, 5 * statistics.median(baseline))
    assert max(t for _, t in writes) < DEADLINE
    # Every deletion request ended within the deadline with a 503 and left no live token.
    for status, elapsed, response in results:
        assert status == 503
        assert response.json()["statusCode"] == 503
        assert "mail" in response.json()["body"].lower()
        assert elapsed < DEADLINE + 1.0
    assert await _live_tokens(db) == 0
    # Sends in flight per worker are capped (SMTP_MAX_CONCURRENT, 10 by default).
    assert smtp.peak <= 10


async def test_slow_mail_server_one_deadline_for_the_whole_send(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    """Each step answers well inside the deadline, the whole exchange does not."""
    async with fake_smtp(0.4) as (smtp, port), service(settings, port) as c:
        (ulid,) = await _customers(c, 1, "slow")
        status, elapsed, response = await _request_deletion(c, ulid)
        assert status == 503, response.text
        assert elapsed < DEADLINE + 1.0
        assert await _live_tokens(db) == 0


async def test_a_send_that_fits_the_deadline_is_200_with_one_live_token(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    async with fake_smtp(0.02) as (smtp, port), service(settings, port) as c:
        (ulid,) = await _customers(c, 1, "quick")
        status, _, response = await _request_deletion(c, ulid)
        assert status == 200, response.text
        assert "delete/confirm" in smtp.messages[-1].replace("=\r\n", "")
        assert await _live_tokens(db) == 1


async def test_sends_in_flight_are_capped_and_waiting_counts_against_the_deadline(
    client: httpx.AsyncClient, settings: Settings, db: asyncpg.Connection
) -> None:
    async with fake_smtp(None) as (smtp, port), service(settings, port, smtp_max_concurrent=2) as c:
        ulids = await _customers(c, 6, "capped")
        start = time.monotonic()
        results = await asyncio.gather(*(_request_deletion(c, u) for u in ulids))
        elapsed = time.monotonic() - start
    assert smtp.peak <= 2 and smtp.connections <= 6  # never more than 2 at once
    assert [status for status, _, _ in results] == [503] * 6
    assert elapsed < DEADLINE + 1.0  # the queued ones did not wait a deadline each
    assert await _live_tokens(db) == 0
