"""Graceful shutdown: a request in flight when SIGTERM arrives still gets its answer."""

import asyncio
import signal

import httpx

from tests.conftest import STAFF, start_service


async def test_sigterm_lets_the_request_in_flight_finish(database_url: str, client, db) -> None:
    """(`client` is requested for its clean-up of what the upload wrote.)"""
    proc, base = await asyncio.to_thread(start_service, database_url)
    try:
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
