"""The database URL (DATABASE_URL or the embedded PostgreSQL) and the engine built on it."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings


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


def make_engine(url: str, settings: Settings) -> AsyncEngine:
    """An asyncpg engine; connections lost in a database restart are dropped from the pool."""
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=1800,
        hide_parameters=True,  # bound values are personal data: keep them out of error logs
    )
