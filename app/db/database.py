"""The database handle services use.

Writes and the other reads go through SQLAlchemy Core (`transaction()`, `autocommit()`); the
hot reads (by id, list pages and their counts) go through a small raw asyncpg pool
(`fetchrow()`, `fetch()`, `connect()`) in plain or precompiled SQL: one round trip each and
no per-request SQL compilation or result wrapping (see bench/README.md for the measurements).
Its connections are admitted in arrival order; nothing holds one while it waits.
With a read replica (app/db/replica.py), `fetchrow()` and `fetch()` run there while it is
fresh and the request may read it; `connect()` (the count cache, which writes) stays on the
primary.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.engine import DbTimeouts, driver_dsn
from app.db.outage import connection_lost, is_outage
from app.db.replica import PRIMARY_ONLY, REPLICA_LOST, ReadReplica
from app.errors import Unavailable
from app.metrics import DB_UNAVAILABLE

UNAVAILABLE = "The database is unavailable, try again shortly."
_NOT_SERVED = object()  # the replica did not answer: ask the primary


@dataclass(slots=True)
class Unit:
    """A unit of work: its transaction's connection, and whose personal data it wrote (so
    that what is kept beside the work can be erased with them)."""

    conn: AsyncConnection
    driver: asyncpg.Connection  # the same connection, for the driver's own statements
    people: list[uuid.UUID] = field(default_factory=list)


# The unit of work this task runs in, if any (see `Database.unit_of_work`).
_UNIT: ContextVar[Unit | None] = ContextVar("jambo_unit_of_work", default=None)


@contextmanager
def _outage_is_unavailable() -> Iterator[None]:
    """Turn a lost, refused, frozen or busy database into Unavailable (a clean 503),
    judged by the failure's cause (see app/db/outage.py)."""
    try:
        yield
    except Unavailable:
        raise
    except Exception as exc:
        if is_outage(exc):
            DB_UNAVAILABLE.inc()  # here only: the Unavailable raised passes the outer blocks
            raise Unavailable(UNAVAILABLE) from exc
        raise


@asynccontextmanager
async def _drop_if_broken(conn: AsyncConnection) -> AsyncIterator[None]:
    """A connection that failed for an outage (timed out mid-statement, lost its server)
    is in no state to be reused: discard it rather than return it to the pool."""
    try:
        yield
    except Exception as exc:
        if connection_lost(exc) and not conn.invalidated:
            with suppress(Exception):
                await conn.invalidate()
        raise


async def _roll_back(conn: AsyncConnection, driver: asyncpg.Connection) -> None:
    """End a failed unit's transaction. A connection that cannot is discarded, never pooled
    with a transaction open; the unit's own failure is the one reported."""
    try:
        await driver.execute("ROLLBACK")
    except BaseException:  # noqa: BLE001 - lost, cut short or cancelled: it goes either way
        if not conn.invalidated:
            with suppress(Exception):
                await conn.invalidate()


def _drop_if_stuck(conn: asyncpg.Connection, exc: BaseException) -> None:
    """A statement cut short (timed out, cancelled) or a lost server: close the connection at
    once. Released as it is, asyncpg would first wait for the server to acknowledge the
    cancel request, which a frozen server never does: the wait would outlast every bound."""
    if isinstance(exc, (asyncio.CancelledError, TimeoutError)) or connection_lost(exc):
        # The pool may already have taken back a connection its server dropped: then there
        # is nothing left to close, and the original failure is the one to report.
        with suppress(asyncpg.InterfaceError):
            conn.terminate()


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
        timeouts: DbTimeouts | None = None,
        *,
        pooled: bool = False,
        replica: ReadReplica | None = None,
    ) -> None:
        self.engine = engine
        self.timeouts = timeouts or DbTimeouts()
        # Behind a transaction pooler (DB_PGBOUNCER) no statement is cached: a cached
        # statement lives on one server connection, and the next use may get another.
        self._pooled = pooled
        self.replica = replica
        # Single statements skip BEGIN/COMMIT: one round trip each; not behind a transaction
        # pooler, where SQLAlchemy prepares a named statement, then runs it in a second exchange,
        # which the pooler may hand to another server connection ("prepared statement …
        # does not exist"); inside a transaction both stay on one.
        self.autocommitting = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        # asyncpg's pool lets a newcomer take a just-released connection ahead of those
        # already waiting (who then queue again at the back): under load a few requests
        # wait many turns. A semaphore admits waiters strictly in arrival order.
        self._turns = asyncio.Semaphore(pool_size)

    async def open(self) -> None:
        """Create the raw read pool (connections are opened on demand)."""
        t = self.timeouts
        self._pool = await asyncpg.create_pool(
            driver_dsn(self.engine.url.render_as_string(hide_password=False)),
            min_size=0,
            max_size=self._pool_size,
            reset=_keep_session,
            timeout=t.connect,
            command_timeout=t.read + t.margin,
            server_settings=t.server_settings(t.read),
            statement_cache_size=0 if self._pooled else 100,
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

    async def _take_turn(self) -> None:
        """Wait for a turn on the read pool, at most the pool timeout (then Unavailable)."""
        if not self._turns.locked():
            await self._turns.acquire()  # the common case: no wait, no timer
            return
        try:
            async with asyncio.timeout(self.timeouts.pool):
                await self._turns.acquire()
        except TimeoutError as exc:
            DB_UNAVAILABLE.inc()
            raise Unavailable(UNAVAILABLE) from exc

    async def _from_replica(self, sql: str, args: tuple[Any, ...], many: bool) -> Any:
        """The statement's answer from the replica while it may serve it, else _NOT_SERVED."""
        replica = self.replica
        if replica is None or PRIMARY_ONLY.get() or not replica.usable(sql):
            return _NOT_SERVED
        try:
            async with replica.turns:
                pool = replica.pool
                assert pool is not None
                return await (pool.fetch(sql, *args) if many else pool.fetchrow(sql, *args))
        except asyncpg.FeatureNotSupportedError:
            replica.primary_only(sql)  # it reads an unlogged table: ask the primary
        except REPLICA_LOST:
            replica.lost()  # and ask the primary
        return _NOT_SERVED

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """One row from a single raw statement on the read pool."""
        if self.replica is not None:
            row = await self._from_replica(sql, args, many=False)
            if row is not _NOT_SERVED:
                return row  # type: ignore[no-any-return]
        return await self._on_primary(sql, args, many=False)  # type: ignore[no-any-return]

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Every row from a single raw statement on the read pool."""
        if self.replica is not None:
            rows = await self._from_replica(sql, args, many=True)
            if rows is not _NOT_SERVED:
                return rows  # type: ignore[no-any-return]
        return await self._on_primary(sql, args, many=True)  # type: ignore[no-any-return]

    async def fetchrow_primary(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """One row from a single raw statement on the primary (never the replica)."""
        return await self._on_primary(sql, args, many=False)  # type: ignore[no-any-return]

    async def fetch_primary(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Every row from a single raw statement on the primary (never the replica)."""
        return await self._on_primary(sql, args, many=True)  # type: ignore[no-any-return]

    async def fetchval_primary(self, sql: str, *args: Any) -> Any:
        """The first value of the first row, from the primary."""
        row = await self.fetchrow_primary(sql, *args)
        return row[0] if row is not None else None

    async def _on_primary(self, sql: str, args: tuple[Any, ...], many: bool) -> Any:
        """One statement on the primary's read pool, in arrival order, bounded waits."""
        pool = self._pool or await self._raw_pool()
        await self._take_turn()  # (not via connect(): its generator costs ~5 % on this path)
        try:
            with _outage_is_unavailable():
                conn = await pool.acquire()
                try:
                    return await (conn.fetch(sql, *args) if many else conn.fetchrow(sql, *args))
                except BaseException as exc:
                    _drop_if_stuck(conn, exc)
                    raise
                finally:
                    await pool.release(conn)
        finally:
            self._turns.release()

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[asyncpg.Connection]:
        """A raw autocommit connection of the read pool, for reads in plain SQL."""
        pool = self._pool or await self._raw_pool()
        await self._take_turn()
        try:
            with _outage_is_unavailable():
                conn = await pool.acquire()
                try:
                    yield conn
                except BaseException as exc:
                    _drop_if_stuck(conn, exc)
                    raise
                finally:
                    await pool.release(conn)
        finally:
            self._turns.release()

    async def schema_revision(self) -> str | None:
        """The migration the primary's schema is at (None before the first one)."""
        async with self.connect() as conn:
            revision: str | None = await conn.fetchval(
                "SELECT max(version_num) FROM alembic_version"
            )
            return revision

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Unit]:
        """One transaction that every `transaction()` and `autocommit()` block run inside it
        joins (they neither begin nor commit): a use case's writes and what the caller keeps
        beside them (an Idempotency-Key's answer) commit together, or not at all.

        BEGIN and COMMIT are sent on the driver's connection under an autocommitting
        SQLAlchemy one (which then starts no transaction of its own): two plain messages,
        where SQLAlchemy's own transaction costs a third of a keyed create's client CPU."""
        if _UNIT.get() is not None:
            raise RuntimeError("units of work do not nest")
        with _outage_is_unavailable():
            async with self.autocommitting.connect() as conn, _drop_if_broken(conn):
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                await driver.execute("BEGIN")
                unit = Unit(conn, driver)
                token = _UNIT.set(unit)
                try:
                    yield unit
                except BaseException:
                    await _roll_back(conn, driver)
                    raise
                finally:
                    _UNIT.reset(token)
                await driver.execute("COMMIT")

    @staticmethod
    def wrote_data_of(person: uuid.UUID) -> None:
        """Note that the current unit of work (if any) wrote this person's data."""
        unit = _UNIT.get()
        if unit is not None:
            unit.people.append(person)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back on any error (inside a
        unit of work: the unit's, committed with it)."""
        joined = _UNIT.get()
        if joined is not None:
            yield joined.conn
            return
        with _outage_is_unavailable():
            async with self.engine.begin() as conn, _drop_if_broken(conn):
                yield conn

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """An autocommit connection: each statement its own transaction (reads, and writes
        that are one statement); inside a unit of work, the unit's transaction."""
        joined = _UNIT.get()
        if joined is not None:
            yield joined.conn
            return
        with _outage_is_unavailable():
            if self._pooled:  # one short transaction (see __init__)
                async with self.engine.begin() as conn, _drop_if_broken(conn):
                    yield conn
                return
            async with self.autocommitting.connect() as conn, _drop_if_broken(conn):
                yield conn
