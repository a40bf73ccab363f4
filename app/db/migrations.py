"""Where the Alembic migrations live, and the revision this build expects."""

import asyncio
from pathlib import Path

import asyncpg
from alembic.config import Config
from alembic.script import ScriptDirectory

_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str | None = None) -> Config:
    """Alembic's config: alembic.ini from the working directory (the container), else the source."""
    root = Path.cwd() if (Path.cwd() / "alembic.ini").is_file() else _SOURCE_ROOT
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["configure_logging"] = False
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def head_revision() -> str | None:
    """The newest migration shipped with this build."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(database_url: str, timeout: float = 5.0) -> str | None:
    """The revision the database's schema is at (None: never migrated)."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    async with asyncio.timeout(timeout + 1):
        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            if await conn.fetchval("SELECT to_regclass('alembic_version')") is None:
                return None
            value = await conn.fetchval("SELECT max(version_num) FROM alembic_version")
            return str(value) if value is not None else None
        finally:
            await conn.close()


def schema_mismatch(database_url: str, timeout: float = 5.0) -> str | None:
    """Why this build must not serve this database (None when its schema is at our head)."""
    expected = head_revision()
    try:
        current = asyncio.run(current_revision(database_url, timeout))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"cannot read the database's schema revision ({type(exc).__name__}: {exc})"
    if current != expected:
        return (
            f"the database schema is at revision {current or '(none)'} but this build expects "
            f"revision {expected}; run `jambo migrate` (or deploy the matching build)"
        )
    return None
