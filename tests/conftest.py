"""Real parts only: a real PostgreSQL database per run, a real SMTP server, real JWTs."""

import asyncio
import atexit
import functools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from jose import jwt

from app.cli import migrate_to_head
from app.config import Settings
from app.contracts.guards import Admission, HostCheck
from app.db.engine import embedded_database_url
from app.main import create_app
from app.middleware import EdgeMiddleware, ForwardedHeaders

JWT_SECRET = "test-secret-" + "x" * 40
ORIGIN = "https://app.example.com"
TABLES = (
    "count_cache, audit_events, idempotency_keys, deletion_tokens, email_codes, api_clients,"
    " loyalty_members, customers, sign_in_limits, address_changes"
)


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def server_url() -> str:
    """TEST_DATABASE_URL's server when set, else the embedded one (started on demand)."""
    # An embedded server the tests start is stopped when they end; one already running
    # (`make run`) is left alone.
    return os.environ.get("TEST_DATABASE_URL") or embedded_database_url(
        ".data", "postgres", stop_at_exit=True
    )


def url_of_database(base_url: str, name: str) -> str:
    """The URL of database `name` on `base_url`'s server (its query string kept)."""
    head, _, tail = base_url.partition("?")
    prefix = head.rsplit("/", 1)[0]
    return f"{prefix}/{name}" + (f"?{tail}" if tail else "")


async def create_database(base_url: str, name: str) -> str:
    """A new empty database on the same server as `base_url`; returns its asyncpg URL."""
    conn = await asyncpg.connect(_plain(base_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url_of_database(base_url, name)


async def drop_database(base_url: str, name: str) -> None:
    conn = await asyncpg.connect(_plain(base_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def edge_alone(app: Any, trusted_proxies: str = "") -> EdgeMiddleware:
    """The edge layer by itself around `app`: every Host allowed, ten requests in flight, no
    contract to render a refusal (for testing or timing the layer without the service)."""
    return EdgeMiddleware(
        app,
        forwarded=ForwardedHeaders(trusted_proxies),
        root_path="",
        hosts=HostCheck(["*"], lambda _path: None),
        admission=Admission(10, 1024, lambda _path: None),
    )


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def body(self, index: int = -1) -> str:
        payload = self.messages[index].get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    base = server_url()
    name = f"jambo_test_{os.getpid()}_{secrets.token_hex(3)}"
    url = await create_database(base, name)
    await asyncio.to_thread(migrate_to_head, url)
    yield url
    await drop_database(base, name)


@pytest.fixture(scope="session")
def settings(database_url: str, mailbox: Mailbox) -> Settings:
    return Settings(
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        allowed_origins=[ORIGIN],
        cors_allow_origins=["https://frontend.example.com"],
        # The hosts the tests' clients use (the default allows only localhost's names).
        allowed_hosts=["testserver", "t", "gw", "internal", "api.example.com", "shop.example"],
        log_level="WARNING",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@functools.cache
def serve_data_dir() -> str:
    """DATA_DIR of the services the tests start: their development mail (SMTP_HOST unset) is
    kept there, apart from the project's own .data, and removed when the run ends."""
    folder = tempfile.mkdtemp(prefix="jambo-serve-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def start_service(
    database_url: str,
    env: dict[str, str | None] | None = None,
    args: tuple[str, ...] = (),
    stdout: Any = None,
    port: int | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `jambo serve` (the one way every test that needs a real server starts it) on
    `port` (else a free one) over `database_url`; wait until it answers.

    `env` adds to or overrides the test environment (None removes a variable), `args` adds
    to the command line; the log (stdout and stderr) goes to `stdout` where a test reads it,
    else to a temporary file kept for the reader of a failing test."""
    port = port or free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "LOG_LEVEL": "WARNING",
        "SMTP_HOST": "",
        "ALLOWED_ORIGINS": ORIGIN,
        "DATA_DIR": serve_data_dir(),
    }
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    log = stdout
    if log is None:
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the child writes to it
            prefix=f"jambo-serve-{port}-", suffix=".log", delete=False
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-migrate", *args],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    if stdout is None:
        log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1)
            return proc, base
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the service did not start") from None
            time.sleep(0.2)


def stop_service(proc: subprocess.Popen[Any]) -> None:
    """End a service (or any process) a test started, waiting for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[str]:
    """The real service over the test database, shared by the tests that need HTTP."""
    proc, base = start_service(database_url)
    yield base
    stop_service(proc)


@pytest.fixture
async def client(app: Any, mailbox: Mailbox) -> AsyncIterator[httpx.AsyncClient]:
    mailbox.messages.clear()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    conn = await asyncpg.connect(_plain(app.state.settings.database_url))
    try:
        await conn.execute(f"TRUNCATE {TABLES} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection for asserting what is stored."""
    conn = await asyncpg.connect(_plain(settings.database_url or ""))
    yield conn
    await conn.close()


def make_token(
    sub: str = "staff-1",
    role: str = "staff",
    scope: str | None = "customers:read customers:write loyalty:read loyalty:write events:read",
    *,
    secret: str = JWT_SECRET,
    algorithm: str = "HS256",
    exp_delta: int = 6 * 3600,  # module-level tokens outlive a slow run of the whole suite
    **overrides: Any,
) -> str:
    """Mint a real token the way an identity provider would."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "iat": now,
        "exp": now + exp_delta,
        "iss": "jambo",
        "aud": "jambo-api",
    }
    if scope is not None and role == "staff":
        claims["scope"] = scope
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return str(jwt.encode(claims, secret, algorithm=algorithm))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


STAFF = auth(make_token())


def customer_auth(ulid: str) -> dict[str, str]:
    return auth(make_token(ulid, role="customer"))


JAMBO_CUSTOMER = {
    "first_name": "Cynthia",
    "last_name": "Norris",
    "middle_name": "Alexander",
    "email": "aaron97@example.org",
    "nationality": "Lesotho",
    "dob": "1912-09-06",
    "phone_number": "0712345678",
}


async def create_customer(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    """Create a customer through the Jambo contract and return its body."""
    response = await client.post(
        "/api/customers", json={**JAMBO_CUSTOMER, **changes}, headers=STAFF
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()["body"]
    return body
