"""Graceful shutdown: a request in flight when SIGTERM arrives still gets its answer."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request

import httpx

from tests.conftest import JWT_SECRET, STAFF, free_port


async def test_sigterm_lets_the_request_in_flight_finish(database_url: str, client, db) -> None:
    """(`client` is requested for its clean-up of what the upload wrote.)"""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "did not start"
                await asyncio.sleep(0.2)
        members = [
            {"loyalty_id": f"S{i}", "client_name": f"Member {i}", "client_birthday": "1980-01-01"}
            for i in range(10_000)
        ]
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            upload = asyncio.create_task(http.post("/api/v1/loyalty/", json=members, headers=STAFF))
            await asyncio.sleep(0.15)  # the upload is being read or written now
            proc.send_signal(signal.SIGTERM)
            response = await upload
        assert response.status_code == 201, response.text
        assert response.json() == {"updated": 0, "inserted": 10_000}
        # It then exits by itself (uvicorn re-raises SIGTERM once it has drained).
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert await db.fetchval("SELECT count(*) FROM loyalty_members") == 10_000
    finally:
        if proc.poll() is None:
            proc.kill()
