"""Bounded hostile-client trials against a running service (loopback only).

`python -m bench.hostile BASE_URL STAFF_TOKEN CUSTOMER_ULID CUSTOMER_TOKEN [--only NAMES]`
prints one JSON object per trial: the time to refuse pathological bodies, /healthz latency
during a header flood, a slow-client flood, 200 uploads trickling their bodies (with a staff
GET's latency and statuses beside it) and a 10,000-member bulk upload, p99 and the shed
share under many concurrent connections, and the status of each junk id. Every trial is
bounded in time and connection count.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

LIMIT_S = 20.0
SKIPPED: set[str] = set()  # bodies left out (a quadratic one would hold an old server)


def pathological() -> dict[str, bytes]:
    """Bodies that hurt naive parsers: escapes, nesting, huge numbers, long strings."""
    return {
        "escaped_quotes_30k": b'{"a": "' + b'\\"' * 15_000,
        "escaped_quotes_300k": b'["' + b'\\"' * 150_000 + b",]",
        "commas_spaces_200k": b"[" + b"," + b" " * 200_000 + b"x",
        "deep_nesting": b"[" * 100_000 + b"]" * 100_000,
        "huge_number": b'{"discount": ' + b"9" * 500_000 + b"}",
        "long_string": b'{"client_name": "' + b"a" * 800_000 + b'"}',
    }


async def _timed(call: Awaitable[httpx.Response]) -> tuple[int | str, float]:
    start = time.perf_counter()
    try:
        response = await asyncio.wait_for(call, LIMIT_S)
        status: int | str = response.status_code
    except (TimeoutError, httpx.HTTPError) as exc:
        status = type(exc).__name__
    return status, round(time.perf_counter() - start, 3)


async def bodies(base: str, staff: str, ulid: str, customer: str) -> dict[str, Any]:
    """Each pathological body on each route that takes one: status and seconds."""
    routes = [
        ("POST", "/api/v1/loyalty/", staff),
        ("PUT", "/api/v1/loyalty/x/", staff),
        ("POST", "/api/customers", staff),
        ("POST", "/api/v1/customers", staff),
        ("PATCH", f"/api/v1/customers/{ulid}", staff),
        ("POST", "/api/v3/customer/update/", customer),
        ("POST", f"/api/customer/{ulid}/delete/request", customer),
    ]
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, timeout=LIMIT_S) as http:
        for name, body in pathological().items():
            if name in SKIPPED:
                continue
            for method, path, token in routes:
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                out[f"{name} {method} {path}"] = await _timed(
                    http.request(method, path, content=body, headers=headers)
                )
    return out


def _healthz_probe(base: str, stop: threading.Event, samples: list[float]) -> None:
    """/healthz every 20 ms on a fresh connection, from a thread of its own (the flood's
    event loop must not delay the probe), until `stop`; latencies in ms."""
    parts = urlsplit(base)
    while not stop.is_set():
        start = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=LIMIT_S)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            samples.append((time.perf_counter() - start) * 1000)
        except OSError:
            samples.append(LIMIT_S * 1000)
        stop.wait(0.02)


def _summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
    }


async def _during(base: str, load: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    stop = threading.Event()
    samples: list[float] = []
    probe = threading.Thread(target=_healthz_probe, args=(base, stop, samples))
    probe.start()
    await asyncio.sleep(0.2)
    result = await load()
    stop.set()
    probe.join()
    return {"load": result, "healthz": _summary(samples)}


async def _open(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(base)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def header_flood(base: str, connections: int = 20, mib: int = 4) -> dict[str, Any]:
    """`connections` clients each sending a `mib` MiB header; how each ends."""

    async def one() -> str:
        try:
            reader, writer = await _open(base)
        except OSError as exc:
            return type(exc).__name__
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
            chunk = b"a" * 65536
            for _ in range(mib * 16):
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), LIMIT_S)
            writer.write(b"\r\n\r\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), LIMIT_S)
            return line.decode().strip() or "closed"
        except (OSError, TimeoutError) as exc:
            return type(exc).__name__
        finally:
            writer.close()

    async def load() -> dict[str, int]:
        results = await asyncio.gather(*(one() for _ in range(connections)))
        return {r: results.count(r) for r in set(results)}

    return await _during(base, load)


async def slow_flood(base: str, connections: int = 800, seconds: float = 15.0) -> dict[str, Any]:
    """`connections` clients sending a header one byte a second (slowloris); how many the
    server closed within `seconds`."""

    async def one() -> str:
        try:
            reader, writer = await _open(base)
        except OSError as exc:
            return type(exc).__name__
        deadline = time.monotonic() + seconds
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            while time.monotonic() < deadline:
                writer.write(b"X")
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(1), 1.0)
                    if not data or data:
                        return "closed by server"
                except TimeoutError:
                    continue
            return "still open"
        except OSError:
            return "closed by server"
        finally:
            writer.close()

    async def load() -> dict[str, int]:
        results = await asyncio.gather(*(one() for _ in range(connections)))
        return {r: results.count(r) for r in set(results)}

    return await _during(base, load)


async def trickle_flood(
    base: str, staff: str, ulid: str, connections: int = 200, seconds: float = 20.0
) -> dict[str, Any]:
    """`connections` anonymous uploads declaring a 1 MB body and sending one byte every 5 s
    (the issue's attack); meanwhile /healthz (a thread of its own) and a staff GET by id every
    50 ms: their latencies and statuses."""
    stop = asyncio.Event()

    async def one() -> str:
        try:
            reader, writer = await _open(base)
        except OSError as exc:
            return type(exc).__name__
        try:
            writer.write(
                b"POST /api/auth/email-code HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
            )
            while not stop.is_set():
                writer.write(b" ")
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(64), 5.0)
                    return data.split(b"\r\n", 1)[0].decode() or "closed by server"
                except TimeoutError:
                    continue
            return "still open"
        except OSError:
            return "closed by server"
        finally:
            writer.close()

    async def load() -> dict[str, Any]:
        flood = [asyncio.create_task(one()) for _ in range(connections)]
        latencies: list[float] = []
        statuses: dict[int | str, int] = {}
        headers = {"Authorization": f"Bearer {staff}"}
        async with httpx.AsyncClient(base_url=base, timeout=LIMIT_S) as http:
            deadline = time.monotonic() + seconds
            await asyncio.sleep(1)  # every trickler connected and sending
            while time.monotonic() < deadline:
                status, took = await _timed(http.get(f"/api/customer/{ulid}", headers=headers))
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(took * 1000)
                await asyncio.sleep(0.05)
        stop.set()
        ended = await asyncio.gather(*flood)
        return {
            "get_by_id": {**_summary(latencies), "statuses": statuses},
            "tricklers": {r: ended.count(r) for r in set(ended)},
        }

    return await _during(base, load)


async def bulk(base: str, staff: str, members: int = 10_000) -> dict[str, Any]:
    """/healthz latency while a `members`-member bulk upload runs."""
    items = [
        {
            "loyalty_id": f"bulk-{i}",
            "cardno": str(i),
            "discount": "1.5",
            "client_name": f"Member {i}",
            "client_birthday": "1990-01-01",
            "is_male": i % 2 == 0,
        }
        for i in range(members)
    ]
    body = json.dumps(items).encode()

    async def load() -> Any:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            headers = {"Authorization": f"Bearer {staff}", "Content-Type": "application/json"}
            return await _timed(http.post("/api/v1/loyalty/", content=body, headers=headers))

    return await _during(base, load)


async def crowd(
    base: str, staff: str, ulid: str, connections: int = 2000, seconds: float = 5.0
) -> dict[str, Any]:
    """`connections` keep-alive clients each sending GET v1 customer in a loop for
    `seconds`; latency p50/p99 and the share answered 503."""
    parts = urlsplit(base)
    request = (
        f"GET /api/v1/customers/{ulid} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
        f"Authorization: Bearer {staff}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    def count(key: str) -> None:
        statuses[key] = statuses.get(key, 0) + 1

    async def one() -> None:
        try:
            reader, writer = await asyncio.wait_for(_open(base), 5)
        except (OSError, TimeoutError) as exc:
            count(type(exc).__name__)
            return
        try:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), LIMIT_S)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                latencies.append((time.perf_counter() - start) * 1000)
                status = head.split(b" ", 2)[1].decode()
                count(status)
                if b"connection: close" in head.lower():
                    return
                if status == "503":
                    await asyncio.sleep(0.05)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            count(type(exc).__name__)
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    total = sum(statuses.values())
    return {
        "connections": connections,
        "statuses": statuses,
        "shed_share": round(statuses.get("503", 0) / total, 3) if total else None,
        **_summary(latencies),
    }


def crowd_wrk(
    base: str, staff: str, ulid: str, connections: int = 2000, seconds: int = 5
) -> dict[str, Any]:
    """The same crowd driven by wrk (a C client: the figures are the server's, not those
    of a Python client sharing the two cores)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
        + ["-H", f"Authorization: Bearer {staff}", f"{base}/api/v1/customers/{ulid}"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    lines = [line.strip() for line in out.splitlines()]
    found: dict[str, Any] = {"connections": connections}
    for line in lines:
        for label in ("50%", "90%", "99%"):
            if line.startswith(label):
                found[f"p{label[:-1]}"] = line.split()[1]
        if "requests in" in line:
            found["requests"] = int(line.split()[0])
        if line.startswith("Non-2xx"):
            found["non_2xx"] = int(line.split()[-1])
        if line.startswith("Socket errors"):
            found["socket_errors"] = line.split(":", 1)[1].strip()
    if found.get("requests"):
        found["shed_share"] = round(found.get("non_2xx", 0) / found["requests"], 3)
    return found


async def junk_ids(base: str, staff: str, ulid: str, customer: str) -> dict[str, int]:
    """Status of ids with a trailing newline or other junk on v1, Jambo and deletion."""
    out: dict[str, int] = {}
    s = {"Authorization": f"Bearer {staff}"}
    c = {"Authorization": f"Bearer {customer}"}
    async with httpx.AsyncClient(base_url=base, timeout=LIMIT_S) as http:
        for junk in ("%0A", "%0D%0A", "%00", "%20"):
            for method, path, headers, body in (
                ("GET", f"/api/v1/customers/{ulid}{junk}", s, None),
                ("GET", f"/api/customer/{ulid}{junk}", s, None),
                ("DELETE", f"/api/customer/{ulid}{junk}", s, None),
                ("POST", f"/api/customer/{ulid}{junk}/delete/request", c, {"origin": "x"}),
            ):
                response = await http.request(method, path, headers=headers, json=body)
                out[f"{method} {path.replace(ulid, '{ulid}')}"] = response.status_code
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("staff")
    parser.add_argument("ulid")
    parser.add_argument("customer")
    parser.add_argument("--only", default="bodies,junk,headers,slow,bulk,crowd")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--skip-body", default="", help="body names to leave out (comma list)")
    args = parser.parse_args()
    for name in args.skip_body.split(","):
        SKIPPED.add(name)
    trials: dict[str, Callable[[], Awaitable[Any]]] = {
        "junk": lambda: junk_ids(args.base, args.staff, args.ulid, args.customer),
        "bodies": lambda: bodies(args.base, args.staff, args.ulid, args.customer),
        "headers": lambda: header_flood(args.base),
        "slow": lambda: slow_flood(args.base),
        "trickle": lambda: trickle_flood(args.base, args.staff, args.ulid),
        "bulk": lambda: bulk(args.base, args.staff),
        "crowd": lambda: crowd(args.base, args.staff, args.ulid, args.connections),
        "wrk": lambda: _during(
            args.base,
            lambda: asyncio.to_thread(
                crowd_wrk, args.base, args.staff, args.ulid, args.connections
            ),
        ),
    }
    for name in args.only.split(","):
        print(json.dumps({name: await trials[name]()}), flush=True)
        await asyncio.sleep(2)


if __name__ == "__main__":
    asyncio.run(main())
