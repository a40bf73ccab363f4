"""Declarative base, engine construction and the embedded PostgreSQL fallback."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import MetaData, Select, Table, make_url
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from app.config import Settings

if TYPE_CHECKING:
    from app.database import Database

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every table, with a constraint naming convention Alembic can rely on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def embedded_database_url(
    data_dir: str, database: str = "jambo", *, stop_at_exit: bool = False
) -> str:
    """Start (or reuse) the embedded PostgreSQL under `data_dir` and return an asyncpg URL.

    The server outlives this process unless `stop_at_exit` is set and this process started it.
    """
    import pgserver  # imported lazily: only needed without DATABASE_URL
    from pgserver.postgres_server import PostmasterInfo

    root = Path(data_dir).absolute()
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
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=1800,
        hide_parameters=True,  # bound values are personal data: keep them out of error logs
        connect_args=pooler_connect_args(settings),
    )


def make_database(url: str, settings: Settings) -> Database:
    """The service's Database: the engine, the raw read pool and, when configured, a replica."""
    from app.database import Database
    from app.replica import ReadReplica

    cache = 0 if settings.db_pgbouncer else 100
    replica = None
    if settings.database_read_url:
        read_url = make_url(settings.database_read_url).set(drivername="postgresql")
        replica = ReadReplica(
            read_url.render_as_string(hide_password=False),
            settings.db_pool_size,
            settings.db_read_max_lag_seconds,
            cache,
        )
    engine = make_engine(url, settings)
    return Database(engine, settings.db_pool_size, statement_cache_size=cache, replica=replica)


def table_of(model: type[Base]) -> Table:
    """A mapped class's Table, typed as one (Core statements are used on hot paths)."""
    return cast(Table, model.__table__)


@dataclass(frozen=True, slots=True)
class Statement:
    """A Core statement compiled for the raw asyncpg pool: SQL with $n placeholders, the
    parameter name behind each of them, and the values fixed when the statement was built."""

    sql: str
    names: tuple[str, ...]
    fixed: dict[str, object]

    def args(self, values: dict[str, object]) -> list[object]:
        values = self.fixed | values
        return [values[name] for name in self.names]


_ASYNCPG = asyncpg_dialect()


def compile_statement(stmt: Select[Any]) -> Statement:
    """Compile once, run many times: building and compiling cost more than running."""
    compiled = stmt.compile(dialect=_ASYNCPG)
    fixed = {k: v for k, v in compiled.params.items() if v is not None}
    return Statement(str(compiled), tuple(compiled.positiontup or ()), fixed)
