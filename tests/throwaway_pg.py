"""A PostgreSQL server a test owns: started as this process's child so that the test can
stop it, kill -9 it, freeze it (SIGSTOP) and start it again, and reap what it killed.

pgserver (a dependency) provides the binaries and the data directory (it also handles
running as root, which PostgreSQL refuses); its own start daemonizes the server, so it is
stopped at once and the postmaster started here instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg


def children(pid: int) -> list[int]:
    """Every process whose parent is `pid` (the postmaster's backends and helpers)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


class ThrowawayPostgres:
    """One data directory, one postmaster at a time, under the test's control."""

    def __init__(self, root: Path) -> None:
        import pgserver
        from pgserver._commands import POSTGRES_BIN_PATH, pg_ctl

        server: Any = pgserver.get_server(root, cleanup_mode=None)  # initdb, then a daemon
        self.pgdata: Path = server.pgdata
        self.user: str | None = server.system_user
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.user, timeout=60)
        self.postgres = str(POSTGRES_BIN_PATH / "postgres")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(self.pgdata.parent / "postgres.log", "ab")  # noqa: SIM115

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.pgdata}"

    def start(self, timeout: float = 60) -> None:
        """Start the postmaster (crash recovery included) and wait until it accepts."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [self.postgres, "-D", str(self.pgdata), "-h", "", "-k", str(self.pgdata)],
            user=self.user,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {self.log.name}")
            time.sleep(0.2)

    def _accepts(self) -> bool:
        import asyncio

        async def probe() -> None:
            conn = await asyncpg.connect(host=str(self.pgdata), user="postgres", timeout=2)
            await conn.close()

        try:
            asyncio.run(probe())
            return True
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False

    def signal_all(self, sig: signal.Signals) -> None:
        """Send `sig` to the postmaster and every one of its processes."""
        assert self.proc is not None
        for pid in [self.proc.pid, *children(self.proc.pid)]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """A fast shutdown (SIGINT): sessions are ended, the server exits cleanly."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)

    def kill(self) -> None:
        """kill -9 the postmaster and all its processes."""
        self.signal_all(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal_all(signal.SIGCONT)
            self.stop()
        self.log.close()
