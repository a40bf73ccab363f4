"""The database handle services use.

Writes and the other reads go through SQLAlchemy Core (`transaction()`, `autocommit()`); the
hot reads (by id, list pages and their counts) go through a small raw asyncpg pool
(`fetchrow()`, `fetch()`, `connect()`) in plain or precompiled SQL: one round trip each and
no per-request SQL compilation or result wrapping (see bench/README.md for the measurements).
Its connections are admitted in arrival order; nothing holds one while it waits.
With a read replica (app/replica.py), `fetchrow()` and `fetch()` run there while it is fresh
and the request may read it; `connect()` (the count cache, which writes) stays on the primary.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import Unavailable
from app.replica import PRIMARY_ONLY, REPLICA_LOST, ReadReplica


@contextmanager
def _outage_is_unavailable() -> Iterator[None]:
    """Turn a lost or refused database connection into Unavailable (a clean 503)."""
    try:
        yield
    except (
        OperationalError,
        InterfaceError,
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
    ) as exc:
        raise Unavailable("The database is unavailable, try again shortly.") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("The database is unavailable, try again shortly.") from exc
        raise


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release: the read pool runs single autocommit
    statements and never changes session state, so the reset would be a wasted round trip
    per request (asyncpg still rolls back any open transaction itself)."""


class Database:
    """Wraps the engine so services never see pools or isolation levels."""

    def __init__(
        self,
        engine: AsyncEngine,
        pool_size: int = 10,
        *,
        statement_cache_size: int = 100,
        replica: ReadReplica | None = None,
    ) -> None:
        self.engine = engine
        # 0 behind a transaction pooler: a cached statement lives on one server connection.
        self._statement_cache_size = statement_cache_size
        self.replica = replica
        # Single statements skip BEGIN/COMMIT: one round trip each.
        self.autocommitting = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        # asyncpg's pool lets a newcomer take a just-released connection ahead of those
        # already waiting (who then queue again at the back): under load a few requests
        # wait many turns. A semaphore admits waiters strictly in arrival order.
        self._turns = asyncio.Semaphore(pool_size)

    async def open(self) -> None:
        """Create the raw read pool (connections are opened on demand)."""
        url = self.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        self._pool = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=self._pool_size,
            reset=_keep_session,
            statement_cache_size=self._statement_cache_size,
        )
        if self.replica is not None:
            await self.replica.open(self._pool)

    async def close(self) -> None:
        """Close the pools."""
        if self.replica is not None:
            await self.replica.close()
        if self._pool is not None:
            await self._pool.close()
        await self.engine.dispose()

    def read_pool_size(self) -> tuple[int, int]:
        """(open, idle) connections of the raw read pool."""
        if self._pool is None:
            return 0, 0
        return self._pool.get_size(), self._pool.get_idle_size()

    async def _raw_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        return self._pool

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """One row from a single raw statement on the read pool."""
        replica = self.replica
        if replica is not None and replica.usable(sql) and not PRIMARY_ONLY.get():
            try:
                async with replica.turns:
                    return await replica.pool.fetchrow(sql, *args)  # type: ignore[union-attr]
            except asyncpg.FeatureNotSupportedError:
                replica.primary_only(sql)  # it reads an unlogged table: ask the primary
            except REPLICA_LOST:
                replica.lost()  # and ask the primary
        pool = self._pool or await self._raw_pool()
        with _outage_is_unavailable():
            async with self._turns:  # (not via connect(): its generator costs ~5 % here)
                return await pool.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Every row from a single raw statement on the read pool."""
        replica = self.replica
        if replica is not None and replica.usable(sql) and not PRIMARY_ONLY.get():
            try:
                async with replica.turns:
                    return await replica.pool.fetch(sql, *args)  # type: ignore[union-attr]
            except asyncpg.FeatureNotSupportedError:
                replica.primary_only(sql)  # it reads an unlogged table: ask the primary
            except REPLICA_LOST:
                replica.lost()
        pool = self._pool or await self._raw_pool()
        with _outage_is_unavailable():
            async with self._turns:
                return await pool.fetch(sql, *args)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[asyncpg.Connection]:
        """A raw autocommit connection of the read pool, for reads in plain SQL."""
        pool = self._pool or await self._raw_pool()
        with _outage_is_unavailable():
            async with self._turns, pool.acquire() as conn:
                yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with _outage_is_unavailable():
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """An autocommit connection: each statement its own transaction (reads, and writes
        that are one statement)."""
        with _outage_is_unavailable():
            async with self.autocommitting.connect() as conn:
                yield conn
