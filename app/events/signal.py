"""Waking the feed's long polls: PostgreSQL LISTEN/NOTIFY between processes, an asyncio.Event
within one. A waiting reader costs no database round trip while nothing changes.

After a write commits, its process wakes its own readers at once and sends one NOTIFY for
all the writes of the next few milliseconds (sent after the commit, never inside the
writing transaction: a NOTIFY there takes a database-wide lock until that commit ends,
which would put every writer's commit in one queue). Each process keeps one connection
listening; while it is lost, readers are woken once a second instead (one check per
process, not per reader) until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import asyncpg

from app.db.database import Database
from app.logs import RateLimitedLog

log = logging.getLogger("jambo.events")
warn = RateLimitedLog(log)
CHANNEL = "jambo_events"
NOTIFY_EVERY = 0.01  # at most one NOTIFY per process this often
FALLBACK_TICK = 1.0


class ChangeSignal:
    """Tells this process's waiting readers that events may have been committed."""

    def __init__(self, db: Database, dsn: str) -> None:
        self.db = db
        self.dsn = dsn
        self._changed = asyncio.Event()
        self._notifying: asyncio.Task[None] | None = None
        self._listening: asyncio.Task[None] | None = None
        self.listening = False

    def current(self) -> asyncio.Event:
        """The event the next change sets (take it before reading, then wait on it)."""
        return self._changed

    def _wake(self) -> None:
        woken, self._changed = self._changed, asyncio.Event()
        woken.set()

    def poke(self) -> None:
        """A write of this process committed: wake its readers, and soon the others'."""
        self._wake()
        if self._notifying is None or self._notifying.done():
            self._notifying = asyncio.create_task(self._notify())

    async def _notify(self) -> None:
        await asyncio.sleep(NOTIFY_EVERY)
        try:
            await self.db.fetchrow_primary("SELECT pg_notify($1, '')", CHANNEL)
        except Exception as exc:  # noqa: BLE001 - other processes' readers wake on their tick
            warn.warn("notify_failed", f"change notification not sent: {type(exc).__name__}")

    async def wait(self, changed: asyncio.Event, timeout: float) -> None:
        """Until `changed` is set or `timeout` seconds pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await changed.wait()

    def start(self) -> None:
        """Begin listening (a task of this process)."""
        self._listening = asyncio.create_task(self._listen())

    async def close(self) -> None:
        for task in (self._listening, self._notifying):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _listen(self) -> None:
        pause = 0.5
        while True:
            try:
                await self._listen_once()
                pause = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried below, readers tick meanwhile
                warn.warn("listen_failed", f"not listening for changes: {type(exc).__name__}")
            # Without a listener, wake readers on a tick until it is back.
            deadline = asyncio.get_running_loop().time() + pause
            while asyncio.get_running_loop().time() < deadline:
                self._wake()
                await asyncio.sleep(min(FALLBACK_TICK, pause))
            pause = min(pause * 2, 10.0) * random.uniform(0.8, 1.2)

    async def _listen_once(self) -> None:
        """Listen on one connection until it is lost."""
        conn = await asyncpg.connect(self.dsn, timeout=5)
        try:
            await conn.add_listener(CHANNEL, lambda *_args: self._wake())
            self.listening = True
            self._wake()  # anything committed while we were not listening
            while not conn.is_closed():  # asyncpg marks it closed when the server goes
                await asyncio.sleep(FALLBACK_TICK)
        finally:
            self.listening = False
            if not conn.is_closed():
                conn.terminate()
