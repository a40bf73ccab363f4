"""Declarative base, engine construction and the embedded PostgreSQL fallback."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import MetaData, Select, Table
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from app.config import Settings

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
    from app.embedded import data_path, quiet_runtime_dir

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


def make_engine(url: str, settings: Settings) -> AsyncEngine:
    """An asyncpg engine; connections lost in a database restart are dropped from the pool."""
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=1800,
        hide_parameters=True,  # bound values are personal data: keep them out of error logs
    )


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
