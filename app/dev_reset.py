"""Starting over in the embedded development set-up (`jambo reset`, `make reset`).

It stops the `jambo serve` running on the embedded PostgreSQL (which records its pid under
DATA_DIR for this), stops that PostgreSQL, and removes what the set-up keeps under DATA_DIR:
the database (customers, loyalty members, API clients, codes), the kept JWT secret (so every
token issued until now is refused), the development client for /docs and the kept mail.
Only those known entries are removed: DATA_DIR may be any folder a person chose.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.auth.signing import KEPT_SECRET_FILE
from app.db.embedded import data_path, quiet_runtime_dir, stop_server
from app.dev_client import DEV_CLIENT_FILE
from app.dev_mailbox import mail_folder

SERVICE_PID_FILE = "serve.pid"


def _pid_file(data_dir: str) -> Path:
    return data_path(data_dir) / SERVICE_PID_FILE


def record_service(data_dir: str) -> None:
    """Note this process as the `jambo serve` running on the embedded set-up."""
    path = _pid_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n", encoding="utf-8")


def forget_service(data_dir: str) -> None:
    """Remove the note, if it is this process's."""
    path = _pid_file(data_dir)
    try:
        if path.read_text(encoding="utf-8").strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass


def stop_service(data_dir: str, timeout: float = 30) -> int | None:
    """Stop the recorded `jambo serve` (graceful, as Ctrl-C would); its pid, or None if none
    runs. A pid since reused by another program is left alone."""
    with quiet_runtime_dir():
        import psutil  # pgserver's dependency: present wherever the embedded server is

    path = _pid_file(data_dir)
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
        process = psutil.Process(pid)
        command = " ".join(process.cmdline())
    except (OSError, ValueError, psutil.Error):
        return None
    if "serve" not in command or not ("jambo" in command or "app.cli" in command):
        return None
    process.terminate()
    if not _ended(process, timeout):
        process.kill()
        _ended(process, timeout)
    return pid


def _ended(process: Any, timeout: float) -> bool:
    """Whether the process ended within `timeout` (a zombie has: only its parent, the shell
    that started it, may reap it)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@dataclass
class Reset:
    """What `reset` did."""

    service_pid: int | None = None
    database_stopped: bool = False
    removed: list[str] = field(default_factory=list)


def reset(data_dir: str) -> Reset:
    """Stop the service and the embedded PostgreSQL, then remove the set-up's data."""
    done = Reset(service_pid=stop_service(data_dir), database_stopped=stop_server(data_dir))
    root = data_path(data_dir)
    for target in (
        root / "pg",
        root / KEPT_SECRET_FILE,
        root / DEV_CLIENT_FILE,
        mail_folder(data_dir),
        root / SERVICE_PID_FILE,
    ):
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            continue
        done.removed.append(target.name)
    return done
