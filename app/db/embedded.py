"""Where the embedded PostgreSQL lives, and `jambo db status|stop` to see and stop it.

A relative DATA_DIR (the default `.data`) is anchored to the project folder when the code runs
from a checkout, so `jambo …` run from any folder finds the same server and data instead of
starting a second, empty one under that folder.
"""

import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from app.config import get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
console = Console(stderr=True)
db_app = typer.Typer(help="The embedded PostgreSQL (used when DATABASE_URL is unset).")


def project_root() -> Path | None:
    """The checkout this code runs from, if it does (an installed wheel has none)."""
    pyproject = PROJECT_ROOT / "pyproject.toml"
    if pyproject.is_file() and 'name = "jambo"' in pyproject.read_text(encoding="utf-8"):
        return PROJECT_ROOT
    return None


def data_path(data_dir: str) -> Path:
    """DATA_DIR as an absolute folder: a relative one is taken from the project folder."""
    path = Path(data_dir).expanduser()
    if path.is_absolute():
        return path
    root = project_root()
    return (root / path) if root is not None else path.absolute()


@contextmanager
def quiet_runtime_dir() -> Iterator[None]:
    """pgserver asks platformdirs for a runtime folder on import; without XDG_RUNTIME_DIR
    (a plain shell, a container) that warns on every command though the fallback works."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs.*")
        yield


def running_server(data_dir: str) -> Any | None:
    """pgserver's PostmasterInfo of the embedded server under `data_dir`, if it runs."""
    with quiet_runtime_dir():
        from pgserver.postgres_server import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_path(data_dir) / "pg")
    return info if info is not None and info.is_running() else None


def stop_server(data_dir: str, timeout: float = 30) -> bool:
    """Stop the embedded server (fast shutdown: sessions end, data is kept); False if none."""
    info = running_server(data_dir)
    if info is None:
        return False
    info.process.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
    info.process.wait(timeout)
    return True


@db_app.command("status")
def status() -> None:
    """Say whether the embedded PostgreSQL runs, and where its data is."""
    folder = data_path(get_settings().data_dir) / "pg"
    info = running_server(get_settings().data_dir)
    if info is None:
        console.print(f"embedded PostgreSQL: not running (data: {folder})")
    else:
        console.print(f"embedded PostgreSQL: running, pid {info.process.pid} (data: {folder})")


@db_app.command("stop")
def stop() -> None:
    """Stop the embedded PostgreSQL that `jambo serve` and `make run` leave running."""
    folder = data_path(get_settings().data_dir) / "pg"
    if stop_server(get_settings().data_dir):
        console.print(f"embedded PostgreSQL stopped (data kept in {folder})")
    else:
        console.print(f"embedded PostgreSQL was not running (data: {folder})")
