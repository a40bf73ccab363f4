"""Helpers for the deployment tests: system binaries, the service as a process, servers
started unprivileged, and a bounded concurrent load over several contracts."""

import asyncio
import itertools
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.conftest import JAMBO_CUSTOMER, STAFF, customer_auth, free_port


def binary(name: str, *places: str) -> str | None:
    """A system binary on PATH or in one of `places` (Debian keeps daemons in /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    for place in (*places, "/usr/sbin", "/usr/lib/postgresql/15/bin"):
        if os.access(Path(place) / name, os.X_OK):
            return str(Path(place) / name)
    return None


def unprivileged(reaching: str | None = None) -> dict[str, Any]:
    """Popen arguments that drop root (PgBouncer and PostgreSQL refuse to run as root); with
    `reaching` (a server's socket directory, private to its owner, as the embedded server's
    is) the owner of that directory, so the process can connect there."""
    if os.geteuid() != 0:
        return {}
    if reaching and os.path.isdir(reaching):
        owner = os.stat(reaching)
        if owner.st_uid != 0:
            return {"user": owner.st_uid, "group": owner.st_gid}
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


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def run_unprivileged(*command: str | Path) -> None:
    subprocess.run([str(c) for c in command], check=True, capture_output=True, **unprivileged())


class Cluster:
    """A throw-away PostgreSQL 15 primary on a free port and, on demand, a streaming replica
    made with pg_basebackup (PostgreSQL refuses to run as root: run as `postgres`)."""

    def __init__(self) -> None:
        self.folder = shared_dir()
        self.primary, self.replica = self.folder / "primary", self.folder / "replica"
        self.primary_port, self.replica_port = free_port(), free_port()

    @staticmethod
    def available() -> bool:
        tools = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
        return all(os.access(PG_BIN / t, os.X_OK) for t in tools)

    def url(self, port: int, database: str = "jambo") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"

    def _start(self, data: Path, port: int) -> None:
        options = f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = self.folder / f"{port}.log"
        run_unprivileged(PG_BIN / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start")

    def start_primary(self) -> str:
        """initdb, start, create the database `jambo`; its URL."""
        run_unprivileged(
            PG_BIN / "initdb", "-D", self.primary, "-U", "postgres", "--auth=trust", "--no-sync"
        )
        self._start(self.primary, self.primary_port)
        run_unprivileged(
            PG_BIN / "createdb",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary_port),
            "-U",
            "postgres",
            "jambo",
        )
        return self.url(self.primary_port)

    def start_replica(self) -> str:
        """A streaming replica of the primary as it is now; its URL."""
        run_unprivileged(
            PG_BIN / "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary_port),
            "-U",
            "postgres",
            "-D",
            self.replica,
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",  # not a spread checkpoint: minutes on an idle server
        )
        self._start(self.replica, self.replica_port)
        return self.url(self.replica_port)

    def stop_replica(self) -> None:
        self._stop(self.replica)

    def stop_primary(self, mode: str = "fast") -> None:
        """Stop the primary (`fast`: its sessions end, its WAL reaches the replica first)."""
        self._stop(self.primary, mode)

    def promote_replica(self) -> None:
        """Make the replica the primary (it accepts writes once this returns)."""
        run_unprivileged(PG_BIN / "pg_ctl", "-D", self.replica, "-w", "promote")

    def _stop(self, data: Path, mode: str = "immediate") -> None:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", mode, "stop"]
        subprocess.run(command, capture_output=True, check=False, **unprivileged())

    def stop(self) -> None:
        """Stop both servers and remove their files."""
        self._stop(self.replica)
        self._stop(self.primary)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_pgbouncer(database_url: str, pool_size: int = 4) -> tuple[subprocess.Popen[bytes], str]:
    """PgBouncer in transaction mode in front of `database_url`'s server; its URL."""
    url = urlsplit(database_url)
    name = url.path.lstrip("/")
    query = dict(part.split("=", 1) for part in url.query.split("&") if "=" in part)
    host, port = query.get("host") or url.hostname or "127.0.0.1", url.port or 5432
    user = url.username or "postgres"
    folder = shared_dir()
    listen = free_port()
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{name} = host={host} port={port} dbname={name}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        # Few server connections for many clients: statements of different clients meet
        # on the same server connection, as they do in production.
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
    )
    for path in folder.iterdir():
        path.chmod(0o644)
    pgbouncer = binary("pgbouncer")
    assert pgbouncer is not None
    proc = subprocess.Popen(
        [pgbouncer, str(folder / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **unprivileged(reaching=host if host.startswith("/") else None),
    )
    for _ in range(100):  # until it listens
        try:
            with socket.create_connection(("127.0.0.1", listen), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    return proc, f"postgresql+asyncpg://{user}@127.0.0.1:{listen}/{name}"


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
            method, url, extra = "GET", "/api/v1/customers?pageSize=5&sortBy=lastName", {}
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
