"""Fault trial (issue 13): the running service, on loopback, while a dependency fails.

    python bench/fault_trial.py [SOURCE_TREE [SCENARIO ...]]

Runs `jambo serve` from SOURCE_TREE (default: this checkout) over a PostgreSQL server the
trial owns, and measures: unrelated POST latency and statuses while deletion requests wait
on a silent or a slow mail server; statuses while PostgreSQL is stopped, killed (-9) and
frozen (SIGSTOP); what a scanner's GET of a deletion link does; what `serve --no-migrate`
does on a schema one migration behind. Small and bounded: about two minutes in all.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiosmtpd.controller import Controller
from jose import jwt

HERE = Path(__file__).resolve().parents[1]
TREE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE
ONLY = set(sys.argv[2:])  # scenario names, e.g. pg_freeze; all when none given
SECRET = "trial-secret-" + "x" * 40
ORIGIN = "https://app.example.com"
CUSTOMER = {
    "first_name": "Ann",
    "last_name": "Lee",
    "email": "x@example.org",
    "nationality": "Kenya",
    "dob": "1990-01-01",
    "phone_number": "0712345678",
}

_spec = importlib.util.spec_from_file_location("throwaway_pg", HERE / "tests/throwaway_pg.py")
assert _spec and _spec.loader
throwaway = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(throwaway)


def token(sub: str, role: str) -> dict[str, str]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "role": role, "iat": now, "exp": now + 3600}
    claims |= {"iss": "jambo", "aud": "jambo-api"}
    if role == "staff":
        claims["scope"] = "customers:read customers:write loyalty:read loyalty:write"
    return {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}


STAFF = token("trial", "staff")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(TREE),
        "DATABASE_URL": url,
        "JWT_SECRET": SECRET,
        "ALLOWED_ORIGINS": ORIGIN,
        "LOG_LEVEL": "ERROR",
        "SMTP_HOST": "",
        **extra,
    }


def jambo(url: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "app.cli", *args]
    return subprocess.run(
        cmd, cwd=TREE, env=env(url, **extra), capture_output=True, text=True, timeout=120
    )


class Service:
    """`jambo serve --no-migrate` on a free port."""

    def __init__(self, url: str, **extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(self.port)],
            cwd=TREE,
            env=env(url, **extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("service did not start") from None
                time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def new_database(pg: Any, name: str) -> str:
    conn = await asyncpg.connect(host=str(pg.pgdata), user="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = pg.url(name)
    done = jambo(url, "migrate")
    assert done.returncode == 0, done.stderr
    return url


async def create_customers(client: httpx.AsyncClient, n: int, tag: str) -> list[str]:
    out = []
    for i in range(n):
        r = await client.post(
            "/api/customers", json={**CUSTOMER, "email": f"{tag}{i}@example.org"}, headers=STAFF
        )
        assert r.status_code == 201, r.text
        out.append(r.json()["body"]["ulid"])
    return out


def summary(samples: list[tuple[int | str, float]]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for status, _ in samples:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    times = sorted(t for _, t in samples)
    if not times:
        return {"statuses": statuses}
    return {
        "statuses": statuses,
        "p50_ms": round(statistics.median(times) * 1000),
        "max_ms": round(times[-1] * 1000),
    }


# --- mail ------------------------------------------------------------------------------


async def silent_or_slow_smtp(delay: float | None) -> tuple[asyncio.AbstractServer, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            await asyncio.sleep(delay or 0)
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        try:
            if delay is None:
                await reader.read()
                return
            await say("220 slow ESMTP")
            while line := await reader.readline():
                verb = line.decode(errors="replace").strip().upper()
                if verb.startswith("DATA"):
                    await say("354 go ahead")
                    await reader.readuntil(b"\r\n.\r\n")
                    await say("250 queued")
                elif verb.startswith("QUIT"):
                    await say("221 bye")
                    return
                else:
                    await say("250 ok")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def mail_trial(pg: Any, label: str, delay: float | None) -> dict[str, Any]:
    url = await new_database(pg, f"mail_{label}")
    smtp, port = await silent_or_slow_smtp(delay)
    service = Service(url, SMTP_HOST="127.0.0.1", SMTP_PORT=str(port))
    try:
        async with httpx.AsyncClient(base_url=service.base, timeout=90) as client:
            ulids = await create_customers(client, 40, "del")

            async def deletion(ulid: str) -> tuple[int | str, float]:
                start = time.monotonic()
                try:
                    r = await client.post(
                        f"/api/customer/{ulid}/delete/request",
                        json={"origin": ORIGIN},
                        headers=token(ulid, "customer"),
                    )
                    status: int | str = r.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                return status, time.monotonic() - start

            async def write(i: int) -> tuple[int | str, float]:
                start = time.monotonic()
                try:
                    r = await client.post(
                        "/api/customers",
                        json={**CUSTOMER, "email": f"w{i}@example.org"},
                        headers=STAFF,
                    )
                    status: int | str = r.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                return status, time.monotonic() - start

            deletions = [asyncio.create_task(deletion(u)) for u in ulids]
            await asyncio.sleep(0.5)
            writes = []
            for i in range(20):
                writes.append(await write(i))
                await asyncio.sleep(0.5)
            done = await asyncio.gather(*deletions)
            live = await client.get("/readyz")
        conn = await asyncpg.connect(host=str(pg.pgdata), user="postgres", database=f"mail_{label}")
        try:
            tokens = await conn.fetchval(
                "SELECT count(*) FROM deletion_tokens WHERE used_at IS NULL"
            )
        finally:
            await conn.close()
        return {
            "unrelated_writes": summary(writes),
            "deletion_requests": summary(list(done)),
            "live_tokens_left": tokens,
            "readyz_after": live.status_code,
        }
    finally:
        service.close()
        smtp.close()


# --- PostgreSQL ----------------------------------------------------------------------------


async def pg_trial(pg: Any, label: str, fault: str) -> dict[str, Any]:
    url = await new_database(pg, f"pg_{label}")
    service = Service(url)
    phases: dict[str, list[tuple[int | str, float]]] = {"before": [], "during": [], "after": []}
    phase = "before"
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=service.base, timeout=30) as client:
            (ulid,) = await create_customers(client, 1, "pg")

            async def worker(n: int) -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    kind = i % 3
                    start = time.monotonic()
                    try:
                        if kind == 0:
                            r = await client.get(f"/api/customer/{ulid}", headers=STAFF)
                        elif kind == 1:
                            r = await client.get("/api/customers?page_size=5", headers=STAFF)
                        else:
                            body = {**CUSTOMER, "email": f"l{n}-{i}@example.org"}
                            r = await client.post("/api/customers", json=body, headers=STAFF)
                        status: int | str = r.status_code
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    phases[phase].append((status, time.monotonic() - start))
                    await asyncio.sleep(0.02)

            workers = [asyncio.create_task(worker(n)) for n in range(4)]
            await asyncio.sleep(2)
            phase = "during"
            ready_during: list[tuple[int | str, float]] = []
            if fault == "stop":
                await asyncio.to_thread(pg.stop)
            elif fault == "kill":
                await asyncio.to_thread(pg.kill)
            else:
                pg.signal_all(signal.SIGSTOP)
            await asyncio.sleep(1)

            async def probe() -> None:
                start = time.monotonic()
                try:
                    ready = await client.get("/readyz", timeout=30)
                    ready_during.append((ready.status_code, time.monotonic() - start))
                except httpx.HTTPError as exc:
                    ready_during.append((type(exc).__name__, time.monotonic() - start))

            probing = asyncio.create_task(probe())
            await asyncio.sleep(8)  # the fault lasts 9 s in all
            if fault == "freeze":
                pg.signal_all(signal.SIGCONT)
            else:
                await asyncio.to_thread(pg.start)
            phase = "after"
            await probing
            await asyncio.sleep(4)
            stop.set()
            await asyncio.gather(*workers)
        return {p: summary(s) for p, s in phases.items()} | {"readyz_during": summary(ready_during)}
    finally:
        pg.signal_all(signal.SIGCONT)
        await asyncio.to_thread(pg.start)
        service.close()


# --- scanner and schema ---------------------------------------------------------------------


class Box:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.bodies.append(envelope.content.decode(errors="replace").replace("=\r\n", ""))
        return "250 OK"


async def scanner_trial(pg: Any) -> dict[str, Any]:
    url = await new_database(pg, "scanner")
    box, port = Box(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    service = Service(url, SMTP_HOST="127.0.0.1", SMTP_PORT=str(port))
    out: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=service.base, timeout=30) as client:
            for label, headers in (
                ("Accept: */*", {"Accept": "*/*"}),
                ("no Accept", {"Accept": None}),
                ("HEAD", None),
                ("Accept: application/json", {"Accept": "application/json"}),
            ):
                (ulid,) = await create_customers(client, 1, f"s{len(out)}")
                await client.post(
                    f"/api/customer/{ulid}/delete/request",
                    json={"origin": ORIGIN},
                    headers=token(ulid, "customer"),
                )
                link = re.search(r"/api/customer/([A-Za-z0-9_-]+)/delete/confirm", box.bodies[-1])
                assert link
                path = link.group(0)
                if headers is None:
                    r = await client.head(path)
                else:
                    request = client.build_request("GET", path)
                    for k, v in headers.items():
                        if v is None:
                            del request.headers[k]
                        else:
                            request.headers[k] = v
                    r = await client.send(request)
                still = await client.get(f"/api/customer/{ulid}", headers=STAFF)
                out[label] = {
                    "status": r.status_code,
                    "type": r.headers.get("content-type", "").split(";")[0],
                    "deleted": still.status_code == 404,
                }
        return out
    finally:
        service.close()
        controller.stop()


async def schema_trial(pg: Any) -> dict[str, Any]:
    url = await new_database(pg, "behind")
    heads = jambo(url, "migrate")  # at head
    previous = subprocess.run(
        [
            sys.executable,
            "-c",
            "from app.db.migrations import alembic_config, head_revision;"
            "from alembic.script import ScriptDirectory as S;"
            "print(S.from_config(alembic_config()).get_revision(head_revision()).down_revision)",
        ],
        cwd=TREE,
        env=env(url),
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from alembic import command; from app.db.migrations import alembic_config;"
            f"command.downgrade(alembic_config({url!r}), {previous!r})",
        ],
        cwd=TREE,
        env=env(url),
        check=True,
        capture_output=True,
    )
    assert heads.returncode == 0
    start = time.monotonic()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(port)],
        cwd=TREE,
        env=env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    result: dict[str, Any] = {"schema_at": previous}
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            result |= {
                "serve": f"exited {proc.returncode} after {time.monotonic() - start:.1f} s",
                "message": " ".join((proc.stderr.read() if proc.stderr else "").split())[-300:],
            }
            return result
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        lists = await client.get("/api/customers", headers=STAFF)
        created = await client.post("/api/customers", json=CUSTOMER, headers=STAFF)
        ready = await client.get("/readyz")
    proc.terminate()
    proc.wait(timeout=25)
    return result | {
        "serve": "started",
        "GET /api/customers": lists.status_code,
        "POST /api/customers": created.status_code,
        "readyz": ready.status_code,
    }


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="fault-trial-"))
    pg = throwaway.ThrowawayPostgres(root / "pg")
    await asyncio.to_thread(pg.start)
    results: dict[str, Any] = {"tree": str(TREE)}
    scenarios: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "scanner": lambda: scanner_trial(pg),
        "schema_behind": lambda: schema_trial(pg),
        "mail_silent": lambda: mail_trial(pg, "silent", None),
        "mail_slow_3s_per_step": lambda: mail_trial(pg, "slow", 3.0),
        "pg_stop": lambda: pg_trial(pg, "stop", "stop"),
        "pg_kill": lambda: pg_trial(pg, "kill", "kill"),
        "pg_freeze": lambda: pg_trial(pg, "freeze", "freeze"),
    }
    try:
        for name, run in scenarios.items():
            if not ONLY or name in ONLY:
                results[name] = await run()
    finally:
        pg.close()
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
