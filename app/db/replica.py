"""Hot reads from a streaming replica, and the requests whose reads stay on the primary.

With DATABASE_READ_URL set, the read pool's single statements (a customer by id, list pages
past the first) run on the replica while it is fresh: a watcher compares the primary's WAL
position with the replica's replayed one every fraction of DB_READ_MAX_LAG_SECONDS and takes
the replica out of use while it lags more than that, or cannot be reached. A statement the
replica refuses because it reads the count cache (an unlogged table: not replicated), such as
a list's first page, is remembered and runs on the primary, as do the counts (they write to
that cache). Everything else reads the primary:

- every statement of a write request (any method but GET, HEAD and OPTIONS);
- conditional requests (If-Match, If-None-Match): an ETag is compared with the newest state;
- a caller's requests right after its own write, for DB_READ_AFTER_WRITE_SECONDS. The
  processes keep no shared state, so this is carried two ways: a cookie set on the write's
  response (`jambo-primary`, no identity in it), honoured by every process, for clients that
  keep cookies; and, for those that don't, a per-process window keyed by a hash of the
  request's Authorization header, which only holds when the next request reaches the same
  process. Neither is needed for correctness beyond "reads your own write": the lag bound
  caps how stale any read can be.
"""

import asyncio
import hashlib
import logging
import time
from collections import deque
from contextvars import ContextVar

import asyncpg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.db.engine import driver_dsn

log = logging.getLogger("jambo.replica")

# Set for a request whose reads must see the primary's newest state.
PRIMARY_ONLY: ContextVar[bool] = ContextVar("jambo_primary_only", default=False)
COOKIE = "jambo-primary"

# A replica that went away or cancelled a read for recovery (SQLSTATE 40001): ask the primary.
REPLICA_LOST = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.SerializationError,
)
_PRIMARY_LSN = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
_REPLICA_LSN = (
    "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint"
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset query on release: the pool runs single autocommit reads (see Database)."""


class ReadReplica:
    """The replica's pool and whether it is fresh enough to read from now."""

    def __init__(
        self, dsn: str, pool_size: int, max_lag: float, statement_cache_size: int = 100
    ) -> None:
        self.dsn = dsn
        self.max_lag = max_lag
        self.fresh = False  # until the first check says otherwise
        self.turns = asyncio.Semaphore(pool_size)
        self.pool: asyncpg.Pool | None = None
        self._pool_size = pool_size
        self._cache = statement_cache_size
        self._interval = min(max(max_lag / 2, 0.05), 1.0)
        self._samples: deque[tuple[float, int]] = deque()  # (when, primary WAL position)
        self._task: asyncio.Task[None] | None = None
        # Statements a standby refused: they read an unlogged table (the count cache, whose
        # rows are not replicated), so they always run on the primary.
        self._unreadable: set[str] = set()

    @classmethod
    def configured(cls, settings: Settings) -> "ReadReplica | None":
        """The replica DATABASE_READ_URL names, or None without one."""
        if not settings.database_read_url:
            return None
        return cls(
            driver_dsn(settings.database_read_url),
            settings.db_pool_size,
            settings.db_read_max_lag_seconds,
            0 if settings.db_pgbouncer else 100,
        )

    async def open(self, primary: asyncpg.Pool) -> None:
        """Create the pool (connections on demand) and start watching the lag."""
        self.pool = await asyncpg.create_pool(
            self.dsn,
            min_size=0,
            max_size=self._pool_size,
            reset=_keep_session,
            statement_cache_size=self._cache,
            timeout=2.0,  # connecting: an unreachable replica is given up fast, not in 60 s
        )
        self._task = asyncio.create_task(self._watch(primary))

    async def close(self) -> None:
        """Stop watching and close the pool."""
        if self._task is not None:
            self._task.cancel()
        if self.pool is not None:
            await self.pool.close()

    def usable(self, sql: str) -> bool:
        """Whether `sql` may run on the replica now."""
        return self.fresh and sql not in self._unreadable

    def primary_only(self, sql: str) -> None:
        """Remember a statement the replica cannot run."""
        self._unreadable.add(sql)

    def lost(self) -> None:
        """A read failed on the replica: stop using it until the next check passes."""
        if self.fresh:
            log.warning("read replica unavailable; reading from the primary")
        self.fresh = False

    async def _watch(self, primary: asyncpg.Pool) -> None:
        while True:
            try:
                await self.check(primary)
            except asyncio.CancelledError:
                raise
            except Exception:  # any failure of either side: the primary serves
                self.lost()
            await asyncio.sleep(self._interval)

    async def check(self, primary: asyncpg.Pool) -> None:
        """Sample the primary's WAL position, then judge the replica by what it replayed."""
        assert self.pool is not None
        timeout = max(self._interval, 0.5)
        now = time.monotonic()
        self._samples.append((now, await primary.fetchval(_PRIMARY_LSN, timeout=timeout)))
        while len(self._samples) > 1 and self._samples[1][0] < now - self.max_lag - 1:
            self._samples.popleft()
        standby, replayed = await self.pool.fetchrow(_REPLICA_LSN, timeout=timeout)
        if not standby:  # a promoted replica (or a primary given as one) is current itself
            behind = 0.0
        else:
            # The replica holds everything the primary had at the newest sample at or
            # below its replay position: its staleness is at most the age of that sample.
            behind = float("inf")
            for when, position in reversed(self._samples):
                if position <= replayed:
                    behind = now - when
                    break
        fresh = behind <= self.max_lag
        if fresh != self.fresh:
            log.warning("read replica %s", "in use" if fresh else f"lags {behind:.1f} s: unused")
        self.fresh = fresh


class PrimaryReadsMiddleware:
    """Marks the requests whose reads must come from the primary (see the module's text)."""

    def __init__(self, app: ASGIApp, window: float, root_path: str = "") -> None:
        self.app = app
        self.window = window
        self._recent: dict[bytes, float] = {}  # hashed Authorization -> primary until
        path = root_path.rstrip("/") or "/"
        self._cookie = (
            f"{COOKIE}=1; Max-Age={max(int(window), 1)}; Path={path}; HttpOnly; SameSite=Lax"
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        write = scope["method"] not in ("GET", "HEAD", "OPTIONS")
        primary = write
        caller = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                caller = hashlib.blake2b(value, digest_size=16).digest()
            elif key in (b"if-match", b"if-none-match"):
                primary = True
            elif key == b"cookie" and COOKIE.encode() + b"=" in value:
                primary = True
        now = time.monotonic()
        if not primary and caller:
            primary = self._recent.get(caller, 0.0) > now
        if not write:
            reset = PRIMARY_ONLY.set(primary)
            try:
                await self.app(scope, receive, send)
            finally:
                PRIMARY_ONLY.reset(reset)
            return

        async def remember(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                message["headers"] = [*message.get("headers", []), (b"set-cookie", self._cookie)]
                if caller:
                    self._remember(caller, now + self.window)
            await send(message)

        reset = PRIMARY_ONLY.set(True)
        try:
            await self.app(scope, receive, remember)
        finally:
            PRIMARY_ONLY.reset(reset)

    def _remember(self, caller: bytes, until: float) -> None:
        if len(self._recent) > 10_000:  # bounded: drop the windows that have passed
            now = time.monotonic()
            self._recent = {k: v for k, v in self._recent.items() if v > now}
        self._recent[caller] = until
