"""`make run` signs a person in at /docs, and `make reset` starts over empty (issue 21)."""

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def _environment(data: Path) -> dict[str, str]:
    """The embedded development set-up in a folder of its own: no DATABASE_URL, no secret."""
    drop = ("DATABASE_URL", "JWT_SECRET", "SMTP_HOST", "XDG_RUNTIME_DIR", "ALLOWED_ORIGINS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "DATA_DIR": str(data), "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}


def _serve(data: Path, port: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`jambo serve --print-token` as `make run` runs it; the token and client it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--print-token"],
        env=_environment(data),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    printed: dict[str, str] = {}
    while "client_secret" not in printed:  # on stderr, before the token
        line = proc.stderr.readline()
        if not line:
            raise AssertionError("jambo serve printed no client for /docs")
        name, _, value = line.strip().partition(": ")
        if name in ("client_id", "client_secret"):
            printed[name] = value
    printed["token"] = proc.stdout.readline().strip()  # the last line, once all is ready
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    return proc, printed


def _jambo(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=_environment(data),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """A DATA_DIR of the test's own; its embedded PostgreSQL is stopped afterwards."""
    folder = tmp_path / "data"
    yield folder
    _jambo(folder, "db", "stop")


def test_make_run_prints_a_client_for_docs_and_reset_starts_over(data: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first, printed = _serve(data, port)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            staff = {"Authorization": f"Bearer {printed['token']}"}
            assert http.get("/api/customers", headers=staff).status_code == 200
            # The printed client signs in as the Authorize dialog does (HTTP Basic).
            client = (printed["client_id"], printed["client_secret"])
            form = {"grant_type": "client_credentials"}
            signed_in = http.post("/api/auth/token", data=form, auth=client)
            assert signed_in.status_code == 200, signed_in.text
        reset = _jambo(data, "reset", "--yes")
        assert first.wait(timeout=40) is not None  # the service was stopped
    finally:
        if first.poll() is None:
            first.kill()
    assert reset.returncode == 0, reset.stderr
    said = " ".join(reset.stderr.split())
    assert f"stopped: jambo serve (pid {first.pid}), the embedded PostgreSQL" in said
    assert "every API client is gone" in said and "every token issued until now is refused" in said
    for gone in ("pg", "jwt_secret", "dev_client.json", "serve.pid"):
        assert not (data / gone).exists(), gone

    second, again = _serve(data, port)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            old = {"Authorization": f"Bearer {printed['token']}"}
            assert http.get("/api/customers", headers=old).status_code == 401
            refused = http.post("/api/auth/token", data=form, auth=client)
            assert refused.status_code == 401
            fresh = {"Authorization": f"Bearer {again['token']}"}
            listed = http.get("/api/customers", headers=fresh)
            assert (listed.status_code, listed.json()["count"]) == (200, 0)
    finally:
        second.terminate()
        second.wait(timeout=30)


def test_reset_leaves_a_real_database_alone(tmp_path: Path) -> None:
    env_url = "postgresql+asyncpg://someone@db.example/jambo"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "reset", "--yes"],
        env={**_environment(tmp_path), "DATABASE_URL": env_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "DATABASE_URL is set" in result.stderr
