"""Where the Alembic migrations live, and the revision this build expects."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
from alembic.config import Config
from alembic.script import ScriptDirectory

from app.db.engine import driver_dsn
from app.db.outage import is_outage

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
    async with asyncio.timeout(timeout + 1):
        conn = await asyncpg.connect(driver_dsn(database_url), timeout=timeout)
        try:
            if await conn.fetchval("SELECT to_regclass('alembic_version')") is None:
                return None
            value = await conn.fetchval("SELECT max(version_num) FROM alembic_version")
            return str(value) if value is not None else None
        finally:
            await conn.close()


def wait_until_reachable(
    database_url: str, max_wait: float, connect_timeout: float, say: Callable[[str], None]
) -> str | None:
    """Wait for a database that refuses connections (starting, failing over, not up yet),
    retrying with a doubling pause up to 10 s, at most `max_wait` seconds in all; None once
    it answers, else why not. A refusal that waiting cannot mend (a wrong password, no such
    database) ends the wait at once."""
    deadline = time.monotonic() + max_wait
    pause = 0.5
    while True:
        try:
            asyncio.run(_ping(database_url, connect_timeout))
            return None
        except Exception as exc:  # noqa: BLE001 - which failures are worth waiting for is below
            reason = f"{type(exc).__name__}: {exc}"
            if not is_outage(exc) or time.monotonic() + pause > deadline:
                return reason
        say(f"the database is not reachable yet ({reason}); retrying in {pause:g} s")
        time.sleep(pause)
        pause = min(pause * 2, 10.0)


async def _ping(database_url: str, timeout: float) -> None:
    async with asyncio.timeout(timeout + 1):
        conn = await asyncpg.connect(driver_dsn(database_url), timeout=timeout)
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
