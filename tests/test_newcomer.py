"""A new user's first hour (issue 15): `jambo` from any folder, a busy port, the embedded
server stopped on request, and deletion links for the address actually served."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.db.embedded import project_root
from tests.conftest import JWT_SECRET, customer_auth, make_token, start_service, stop_service

ROOT = Path(__file__).resolve().parent.parent


def jambo(
    *args: str, cwd: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """`jambo …` as a user would run it from `cwd` (no XDG_RUNTIME_DIR, as in a plain shell)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "DATA_DIR")}
    environment |= {"PYTHONPATH": str(ROOT), "JWT_SECRET": JWT_SECRET, **env}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_data_folder_is_the_projects_from_any_folder(tmp_path: Path) -> None:
    assert project_root() == ROOT
    result = jambo("db", "status", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(ROOT / ".data" / "pg") in result.stderr.replace("\n", "")
    assert not (tmp_path / ".data").exists()
    assert "Warning" not in result.stderr  # no RuntimeDirWarning without XDG_RUNTIME_DIR


def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = jambo("serve", "--port", str(port), "--no-migrate", cwd=tmp_path)
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"Port {port} on 127.0.0.1 is already in use" in lines[0]
    assert "Traceback" not in result.stderr


def test_db_stop_stops_the_embedded_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    migrated = jambo("migrate", cwd=tmp_path, timeout=180, DATA_DIR=str(data))
    assert migrated.returncode == 0, migrated.stderr
    running = jambo("db", "status", cwd=tmp_path, DATA_DIR=str(data))
    assert "running, pid" in running.stderr
    stopped = jambo("db", "stop", cwd=tmp_path, DATA_DIR=str(data))
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    after = jambo("db", "status", cwd=tmp_path, DATA_DIR=str(data))
    assert "not running" in after.stderr
    assert (data / "pg" / "PG_VERSION").exists()  # the data is kept


@pytest.fixture
def served_without_origins(database_url: str) -> Iterator[tuple[str, int]]:
    """`jambo serve` with ALLOWED_ORIGINS unset, as `make run` runs it."""
    proc, base = start_service(database_url, env={"ALLOWED_ORIGINS": None})
    yield base, int(base.rsplit(":", 1)[1])
    stop_service(proc)


async def test_the_default_origin_is_the_served_address(
    served_without_origins: tuple[str, int], client: httpx.AsyncClient
) -> None:
    """The README's deletion example works as printed, on whatever port was chosen."""
    base, port = served_without_origins
    created = await client.post(
        "/api/customers",
        headers={"Authorization": f"Bearer {make_token()}"},
        json={
            "first_name": "Cynthia",
            "last_name": "Norris",
            "email": "origin-check@example.org",
            "nationality": "Lesotho",
            "dob": "1985-09-06",
            "phone_number": "0712345678",
        },
    )
    ulid = created.json()["body"]["ulid"]
    url = f"{base}/api/customer/{ulid}/delete/request"
    async with httpx.AsyncClient() as http:
        for origin, status in (
            (f"http://127.0.0.1:{port}", 200),
            (f"http://localhost:{port}", 200),
            ("http://127.0.0.1:9", 400),
        ):
            answer = await http.post(url, headers=customer_auth(ulid), json={"origin": origin})
            assert answer.status_code == status, (origin, answer.text)


async def test_the_loyalty_page_shows_its_token_box_first(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/v1/loyalty/", headers={"Accept": "text/html"})
    assert page.status_code == 401
    text = page.text
    assert text.index('id="token-form"') < text.index("HTTP 401") < text.index("<pre>")
