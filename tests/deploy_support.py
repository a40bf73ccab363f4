"""Helpers for the deployment tests: system binaries, the service as a process, servers
started unprivileged, and a bounded concurrent load over several contracts."""

import asyncio
import itertools
import os
import pwd
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import JAMBO_CUSTOMER, JWT_SECRET, ORIGIN, STAFF, customer_auth, free_port


def binary(name: str, *places: str) -> str | None:
    """A system binary on PATH or in one of `places` (Debian keeps daemons in /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    for place in (*places, "/usr/sbin", "/usr/lib/postgresql/15/bin"):
        if os.access(Path(place) / name, os.X_OK):
            return str(Path(place) / name)
    return None


def unprivileged() -> dict[str, Any]:
    """Popen arguments that drop root (PgBouncer and PostgreSQL refuse to run as root)."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres" if _exists("postgres") else "nobody")
    return {"user": user.pw_uid, "group": user.pw_gid}


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def shared_dir() -> Path:
    """A temporary directory an unprivileged server can read and write."""
    path = Path(tempfile.mkdtemp(prefix="jambo-deploy-"))
    path.chmod(0o777)
    return path


def serve(
    database_url: str, port: int | None = None, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`jambo serve` (one worker) on `port` with extra settings; waits until it answers."""
    port = port or free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "LOG_LEVEL": "WARNING",
        "SMTP_HOST": "",
        "ALLOWED_ORIGINS": ORIGIN,
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-migrate"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz", proc)
    return proc, base


def wait_for(url: str, proc: subprocess.Popen[bytes] | None = None, limit: float = 60) -> None:
    """Poll `url` until it answers 200 (or the process dies, or `limit` seconds pass)."""
    deadline = time.monotonic() + limit
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"{url} never answered") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen[Any]) -> None:
    """End a process this test started, waiting for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Load:
    """A mixed load over the Jambo, v1 and v3 contracts: creates, updates, reads, lists."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.statuses: Counter[int] = Counter()
        self.jambo: list[str] = []  # ulids acknowledged with 201
        self.emails: list[str] = []  # and their e-mail addresses (unique per create)
        self.v1: list[str] = []
        self._serial = itertools.count()

    async def create_jambo(self) -> None:
        email = f"load{next(self._serial)}-{random.getrandbits(32)}@example.org"
        response = await self.client.post(
            "/api/customers", json={**JAMBO_CUSTOMER, "email": email}, headers=STAFF
        )
        self.statuses[response.status_code] += 1
        if response.status_code == 201:
            self.jambo.append(response.json()["body"]["ulid"])
            self.emails.append(email)

    async def create_v1(self) -> None:
        body = {"firstName": "Amina", "lastName": f"Okafor{next(self._serial)}"}
        response = await self.client.post("/api/v1/customers", json=body, headers=STAFF)
        self.statuses[response.status_code] += 1
        if response.status_code == 201:
            self.v1.append(response.json()["data"]["customerId"])

    async def step(self) -> None:
        """One request of a random kind (a create when nothing exists yet)."""
        kind = random.random()
        if not self.jambo or kind < 0.15:
            return await self.create_jambo()
        if not self.v1 or kind < 0.25:
            return await self.create_v1()
        ulid, v1_id = random.choice(self.jambo), random.choice(self.v1)
        if kind < 0.33:
            method, url, extra = (
                "PATCH",
                f"/api/v1/customers/{v1_id}",
                {"json": {"address": {"city": "Nairobi"}}},
            )
        elif kind < 0.55:
            method, url, extra = "GET", f"/api/v1/customers/{v1_id}", {}
        elif kind < 0.75:
            method, url, extra = "GET", f"/api/customer/{ulid}", {}
        elif kind < 0.85:
            method, url, extra = "GET", "/api/v1/customers?limit=5&sortBy=lastName", {}
        elif kind < 0.93:
            method, url, extra = "GET", "/api/customers?page_size=5", {}
        else:
            response = await self.client.get("/api/v3/customer/", headers=customer_auth(ulid))
            self.statuses[response.status_code] += 1
            return None
        response = await self.client.request(method, url, headers=STAFF, **extra)
        self.statuses[response.status_code] += 1
        return None

    async def run(self, workers: int, seconds: float, limit: int = 2000) -> None:
        """`workers` concurrent loops for at most `seconds` and `limit` requests in all."""
        deadline = time.monotonic() + seconds
        budget = itertools.count()

        async def loop() -> None:
            while time.monotonic() < deadline and next(budget) < limit:
                try:
                    await self.step()
                except httpx.TransportError:
                    self.statuses[0] += 1  # no answer at all

        await asyncio.gather(*(loop() for _ in range(workers)))

    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500 or status == 0)
