"""Hostile clients against the real `jambo serve` (uvicorn and its guarded protocol): huge
headers, slow and silent connections, too many connections, and a bulk upload that must
not stall /healthz."""

import asyncio
import json
import os
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.server import connection_cap, uvicorn_options
from tests.conftest import STAFF, TABLES, start_service, stop_service

SERVER: dict[str, int] = {}  # the guarded server's process id


@pytest.fixture(scope="module")
def guarded(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """`jambo serve` with short timeouts and a small connection cap; its log file."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env: dict[str, str | None] = {
        "LOG_LEVEL": "INFO",
        "HEADER_TIMEOUT_SECONDS": "2",
        "BODY_TIMEOUT_SECONDS": "2",
        "BODY_DEADLINE_SECONDS": "4",
        "MAX_REQUESTS_IN_FLIGHT": "5",
        "KEEP_ALIVE_TIMEOUT_SECONDS": "1",
        "MAX_CONNECTIONS": "40",
    }
    with log.open("wb") as out:
        proc, base = start_service(database_url, env=env, stdout=out)
    SERVER["pid"] = proc.pid
    yield int(base.rsplit(":", 1)[1]), log
    stop_service(proc)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before closing; fails if it keeps the connection longer."""
    try:
        return await asyncio.wait_for(reader.read(), seconds)
    except ConnectionError:  # closed with our bytes unread: a reset, no answer
        return b""


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _warnings(log: Path) -> list[str]:
    return [entry.get("event", "") for entry in _lines(log) if entry.get("level") == "warning"]


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 answer with a Content-Length: its status and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    return status, await asyncio.wait_for(reader.readexactly(length), 5)


def _post(path: str, length: int, host: bytes = b"localhost") -> bytes:
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(length).encode() + b"\r\n"
        b"Authorization: " + STAFF["Authorization"].encode() + b"\r\n\r\n"
    )


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"


async def test_a_header_past_64_kib_is_refused(guarded: tuple) -> None:
    port, log = guarded
    reader, writer = await _connect(port)
    start = time.perf_counter()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
    try:
        for _ in range(64):  # 4 MiB, unless the server hangs up first
            writer.write(b"a" * 65536)
            await writer.drain()
    except ConnectionError:
        pass
    answer = await _closed_within(reader, 5)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:80]
    assert time.perf_counter() - start < 5
    writer.close()
    # Just under the cap is fine.
    async with httpx.AsyncClient() as http:
        ok = await http.get(f"http://127.0.0.1:{port}/healthz", headers={"X-Big": "a" * 60000})
    assert ok.status_code == 200
    assert "header_too_large" in _warnings(log)


async def test_a_header_past_the_cap_in_one_write_is_refused(guarded: tuple) -> None:
    port, _log = guarded
    reader, writer = await _connect(port)
    writer.write(
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    )
    await writer.drain()
    answer = await _closed_within(reader, 5)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
    writer.close()


async def test_a_big_body_in_the_same_write_as_its_head_is_no_header(guarded: tuple) -> None:
    """An 80 KB bulk upload whose head and body reach the server in one read: 201, not a
    431 for counting the body as head."""
    port, _log = guarded
    members = [
        {"loyalty_id": f"one-read-{i}", "client_name": "x" * 60, "client_birthday": "1990"}
        for i in range(800)
    ]
    body = json.dumps(members).encode()
    reader, writer = await _connect(port)
    os.kill(SERVER["pid"], signal.SIGSTOP)  # all of it waits in the socket: one read
    try:
        writer.write(_post("/api/v1/loyalty/", len(body)) + body)
        await asyncio.sleep(0.3)
    finally:
        os.kill(SERVER["pid"], signal.SIGCONT)
    await writer.drain()
    status, answer = await _answer(reader)
    assert (status, answer) == (201, b'{"updated":0,"inserted":800}')
    writer.close()


async def test_after_an_early_answer_the_next_request_is_answered_as_itself(
    guarded: tuple,
) -> None:
    port, _log = guarded
    # An over-limit body sent whole: 413, and the connection serves the next request.
    reader, writer = await _connect(port)
    writer.write(_post("/api/v1/customers", 2_000_000) + b" " * 2_000_000 + HEALTHZ)
    await writer.drain()
    assert (await _answer(reader))[0] == 413
    assert await _answer(reader) == (200, b'{"status":"ok"}')
    writer.close()
    # Refused before its body was read (a foreign Host): the short rest of the body is read
    # and dropped, and the next request on the connection is answered as itself.
    reader, writer = await _connect(port)
    writer.write(_post("/api/v1/customers", 1000, host=b"evil.example") + b" " * 400)
    await writer.drain()
    assert (await _answer(reader))[0] == 400
    writer.write(b" " * 600 + HEALTHZ)
    await writer.drain()
    assert await _answer(reader) == (200, b'{"status":"ok"}')
    writer.close()
    # A declared body far over the limit is not waited for: 413, then the server ends the
    # connection (never a stray 431 for the body's bytes).
    reader, writer = await _connect(port)
    writer.write(_post("/api/v1/customers", 50_000_000) + b" " * 200_000)
    await writer.drain()
    assert (await _answer(reader))[0] == 413
    try:
        writer.write(b" " * 200_000)
        await writer.drain()
    except ConnectionError:
        pass
    assert await _closed_within(reader, 5) == b""
    writer.close()


async def test_a_body_has_a_total_deadline(guarded: tuple) -> None:
    port, _log = guarded
    reader, writer = await _connect(port)
    writer.write(_post("/api/auth/email-code", 100))
    start = time.monotonic()

    async def trickle() -> None:  # a byte every half second: never a 2 s stall
        for _ in range(100):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.5)

    trickling = asyncio.create_task(trickle())
    answer = await _closed_within(reader, 10)
    trickling.cancel()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert 3.5 < time.monotonic() - start < 7
    writer.close()


async def test_a_client_leaving_mid_body_is_not_a_server_error(guarded: tuple) -> None:
    port, log = guarded
    reader, writer = await _connect(port)
    writer.write(_post("/api/v1/customers", 1000) + b'{"firstName": ')
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await asyncio.sleep(0.5)
    lines = _lines(log)
    assert any("client disconnected" in e["msg"] and e["level"] == "info" for e in lines)
    assert not [e for e in lines if e["level"] == "error"]
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'route="unmatched",status="499"' in metrics
    assert 'status="500"' not in metrics


async def test_trickling_uploads_take_no_request_slots(guarded: tuple) -> None:
    """Many clients sending bodies a byte at a time (MAX_REQUESTS_IN_FLIGHT is 5 here)."""
    port, _log = guarded
    tricklers = [await _connect(port) for _ in range(20)]
    for _reader, writer in tricklers:
        writer.write(_post("/api/auth/email-code", 1_000_000) + b'{"email": "')
        await writer.drain()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            for _ in range(3):
                listed = await http.get("/api/v1/customers", headers=STAFF)
                assert listed.status_code == 200, listed.text
                await asyncio.sleep(0.3)
    finally:
        for _reader, writer in tricklers:
            writer.close()


async def test_slow_silent_and_stalled_connections_are_closed(guarded: tuple) -> None:
    port, log = guarded
    silent_reader, silent = await _connect(port)
    slow_reader, slow = await _connect(port)
    body_reader, body = await _connect(port)
    body.write(
        b"POST /api/v1/loyalty/ HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n"
        b"Authorization: " + STAFF["Authorization"].encode() + b"\r\n\r\n{"
    )
    start = time.monotonic()

    async def trickle() -> None:
        slow.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        for _ in range(20):
            slow.write(b"X")
            await slow.drain()
            await asyncio.sleep(0.5)

    trickling = asyncio.create_task(trickle())
    results = await asyncio.gather(
        _closed_within(silent_reader, 6),
        _closed_within(slow_reader, 6),
        _closed_within(body_reader, 6),
    )
    trickling.cancel()
    assert time.monotonic() - start < 6
    assert results[1] == b"" or results[1].startswith(b"HTTP/1.1 408")
    for writer in (silent, slow, body):
        writer.close()
    events = _warnings(log)
    assert "header_timeout" in events and "body_timeout" in events


async def test_past_the_connection_cap_the_longest_idle_is_dropped(guarded: tuple) -> None:
    port, log = guarded
    idle = [await _connect(port) for _ in range(60)]
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert response.status_code == 200
    closed = 0
    for reader, writer in idle:
        try:
            if await asyncio.wait_for(reader.read(), 0.05) == b"":
                closed += 1
        except TimeoutError:
            pass
        writer.close()
    assert closed >= 20
    assert "connection_limit" in _warnings(log)


async def test_healthz_stays_fast_during_a_10000_member_upload(live_server: str, db: Any) -> None:
    members = [
        {
            "loyalty_id": f"h{i}",
            "cardno": str(i),
            "discount": "2.5",
            "client_name": f"Member {i}",
            "client_birthday": "1990-01-01",
            "is_male": i % 2 == 0,
        }
        for i in range(10_000)
    ]
    body = json.dumps(members).encode()
    latencies: list[float] = []
    done = asyncio.Event()

    async with httpx.AsyncClient(base_url=live_server, timeout=60) as http:
        await http.get("/healthz")

        async def probe() -> None:
            while not done.is_set():
                start = time.perf_counter()
                await http.get("/healthz")
                latencies.append((time.perf_counter() - start) * 1000)
                await asyncio.sleep(0.01)

        probing = asyncio.create_task(probe())
        await asyncio.sleep(0.1)
        for _ in range(2):
            upload = await http.post(
                "/api/v1/loyalty/",
                content=body,
                headers={**STAFF, "Content-Type": "application/json"},
            )
            assert upload.status_code == 201, upload.text[:200]
        done.set()
        await probing
    await db.execute(f"TRUNCATE {TABLES} CASCADE")
    ordered = sorted(latencies)
    # Before: the loop was held 0.3–0.9 s per upload. The machine is shared: the median
    # must stay under 50 ms and no probe may wait as long as a blocked loop did.
    assert statistics.median(ordered) < 50, ordered
    assert ordered[int(0.9 * (len(ordered) - 1))] < 100, ordered
    assert ordered[-1] < 300, ordered


def test_every_serve_gets_the_guards() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    options = uvicorn_options(settings)
    assert options["http"].startswith("app.server:Guarded")
    assert options["h11_max_incomplete_event_size"] == 64 * 1024
    assert options["timeout_keep_alive"] == 5
    assert connection_cap(settings, 1024) == 1024 - 64 - 20
    assert connection_cap(settings, 1_000_000) == 4096
