"""The database URL (DATABASE_URL or the embedded PostgreSQL) and the engine built on it."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings


def embedded_database_url(
    data_dir: str, database: str = "jambo", *, stop_at_exit: bool = False
) -> str:
    """Start (or reuse) the embedded PostgreSQL under `data_dir` and return an asyncpg URL.

    The server outlives this process unless `stop_at_exit` is set and this process started it.
    """
    from app.db.embedded import data_path, quiet_runtime_dir

    with quiet_runtime_dir():
        import pgserver  # imported lazily: only needed without DATABASE_URL
        from pgserver.postgres_server import PostmasterInfo

    root = data_path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    running = PostmasterInfo.read_from_pgdata(root / "pg")
    started_here = running is None or not running.is_running()
    mode = "stop" if stop_at_exit and started_here else None
    server = pgserver.get_server(root / "pg", cleanup_mode=mode)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return f"postgresql+asyncpg://postgres@/{database}?host={root / 'pg'}"


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set, else the embedded server (exported so workers share it)."""
    url = settings.database_url or os.environ.get("DATABASE_URL")
    if not url:
        url = embedded_database_url(settings.data_dir)
        os.environ["DATABASE_URL"] = url
    return url


def _split_host(entry: str) -> tuple[str, str | None]:
    """`h:p`, `[v6]:p`, `h` or a socket directory → (host, port or None)."""
    if entry.startswith("/"):
        return entry, None
    if entry.startswith("["):
        host, _, rest = entry.partition("]")
        return host + "]", rest.removeprefix(":") or None
    host, colon, port = entry.rpartition(":")
    return (host, port) if colon and port.isdigit() else (entry, None)


def driver_dsn(url: str) -> str:
    """DATABASE_URL as a DSN for asyncpg itself (the raw pools, the start-up checks, the
    listener). SQLAlchemy documents two multi-host forms for asyncpg, repeated `host=h:p`
    and `host=h1,h2&port=p1,p2`; asyncpg reads only the second (of repeated parameters it
    keeps the last), so the first is rewritten into it. Every other parameter
    (`target_session_attrs=read-write`…) passes as it is."""
    parsed = make_url(url).set(drivername="postgresql")
    hosts = parsed.query.get("host")
    if isinstance(hosts, tuple):
        pairs = [_split_host(entry) for entry in hosts]
        default = str(parsed.port or 5432)
        query = {
            "host": ",".join(host for host, _ in pairs),
            "port": ",".join(port or default for _, port in pairs),
        }
        parsed = parsed.difference_update_query(["host", "port"]).update_query_dict(query)
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class DbTimeouts:
    """Every database wait is bounded: connecting, waiting for a pooled connection, and a
    statement (by the server, and by the client too, for a server that no longer answers)."""

    connect: float = 5.0
    pool: float = 5.0
    statement: float = 30.0
    read: float = 5.0  # the raw pool's single-statement hot reads
    margin: float = 1.0  # the client's own limit is the server's plus this (see command)
    # A transaction pooler refuses session parameters in the startup packet: behind one the
    # server-side limit is the role's (ALTER ROLE … SET statement_timeout, docs/deploy.md)
    # and the client's own limit still holds.
    server_side: bool = True

    @classmethod
    def of(cls, settings: Settings) -> DbTimeouts:
        return cls(
            connect=settings.db_connect_timeout_seconds,
            pool=settings.db_pool_timeout_seconds,
            statement=settings.db_statement_timeout_seconds,
            read=min(settings.db_read_timeout_seconds, settings.db_statement_timeout_seconds),
            server_side=not settings.db_pgbouncer,
        )

    @property
    def command(self) -> float:
        """The client's own limit: the server's statement timeout plus a margin for it to
        answer (a frozen server never does)."""
        return self.statement + self.margin

    def server_settings(self, statement: float | None = None) -> dict[str, str]:
        """The session's statement_timeout, enforced by the server (none behind a pooler)."""
        if not self.server_side:
            return {}
        return {"statement_timeout": str(int((statement or self.statement) * 1000))}


def _unique_statement_name() -> str:
    """A prepared statement's name no other client of a pooled server connection uses."""
    return f"__asyncpg_{uuid.uuid4().hex}__"


def pooler_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg arguments for running behind a transaction-mode pooler (DB_PGBOUNCER).

    The pooler hands each transaction (or autocommit statement) whichever server connection
    is free, so a statement prepared and cached on one is missing on the next: no caches, and
    SQLAlchemy's prepared statements get unique names so two clients never collide on one.
    """
    if not settings.db_pgbouncer:
        return {}
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": _unique_statement_name,
    }


def make_engine(url: str, settings: Settings) -> AsyncEngine:
    """An asyncpg engine; connections lost in a database restart are dropped from the pool."""
    timeouts = DbTimeouts.of(settings)
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=1800,
        pool_timeout=timeouts.pool,  # a short wait for a connection, then 503
        connect_args={
            "timeout": timeouts.connect,
            "command_timeout": timeouts.command,
            "server_settings": timeouts.server_settings(),
            **pooler_connect_args(settings),
        },
        hide_parameters=True,  # bound values are personal data: keep them out of error logs
    )
