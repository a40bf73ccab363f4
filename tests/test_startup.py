"""`jambo serve` started while the database refuses connections waits for it (a doubling
pause, logged) and serves once it answers; past DB_STARTUP_WAIT_SECONDS it gives up."""

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.conftest import JWT_SECRET, free_port, start_service, stop_service


class LateDatabase:
    """A TCP port that refuses connections until `open()`, then forwards them to the test
    database's server (TCP or its unix socket)."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        self.unix = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}" if socket_dir else None
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.port = free_port()
        self.name = parts.path
        self.server: asyncio.Server | None = None

    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}{self.name}"

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.unix:
            up_reader, up_writer = await asyncio.open_unix_connection(self.unix)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


async def test_serve_gives_up_after_its_bound(database_url: str) -> None:
    late = LateDatabase(database_url)  # never opened
    env = {**os.environ, "DATABASE_URL": late.url(), "JWT_SECRET": JWT_SECRET}
    env["DB_STARTUP_WAIT_SECONDS"] = "2"
    command = [sys.executable, "-m", "app.cli", "serve", "--no-migrate"]
    command += ["--port", str(free_port())]
    started = time.monotonic()
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "not reachable yet" in done.stderr and "retrying in" in done.stderr
    assert time.monotonic() - started < 20


async def test_serve_waits_for_a_database_that_is_not_up_yet(database_url: str) -> None:
    late = LateDatabase(database_url)
    with tempfile.NamedTemporaryFile(prefix="jambo-late-", suffix=".log") as log:
        waiting = asyncio.create_task(
            asyncio.to_thread(
                start_service, late.url(), env={"DB_STARTUP_WAIT_SECONDS": "60"}, stdout=log
            )
        )
        await asyncio.sleep(2.5)
        assert not waiting.done()  # still waiting for the database, not gone
        await late.open()
        proc, base = await waiting
        try:
            async with httpx.AsyncClient(base_url=base) as http:
                assert (await http.get("/readyz")).status_code == 200
            assert b"not reachable yet" in open(log.name, "rb").read()
        finally:
            stop_service(proc)
            await late.close()
