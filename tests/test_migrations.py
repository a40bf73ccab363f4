"""Migrations upgrade an empty database to head and downgrade back to base."""

import asyncio
import os
import secrets

import asyncpg
from alembic import command
from alembic.config import Config

from app.db.migrations import alembic_config
from tests.conftest import _plain, create_database, drop_database, server_url


def _config(url: str) -> Config:
    return alembic_config(url)


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(_plain(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_upgrade_head_then_downgrade_base_then_upgrade_again() -> None:
    base = server_url()
    name = f"jambo_migr_{os.getpid()}_{secrets.token_hex(3)}"
    url = await create_database(base, name)
    try:
        await asyncio.to_thread(command.upgrade, _config(url), "head")
        assert {
            "customers",
            "loyalty_members",
            "deletion_tokens",
            "audit_events",
            "api_clients",
            "email_codes",
            "idempotency_keys",
        } <= await _tables(url)
        await asyncio.to_thread(command.downgrade, _config(url), "base")
        assert await _tables(url) == {"alembic_version"}
        await asyncio.to_thread(command.upgrade, _config(url), "head")
        assert "customers" in await _tables(url)
    finally:
        await drop_database(base, name)


async def test_models_declare_everything_the_migrations_create() -> None:
    """`alembic check` on a freshly migrated database proposes nothing: autogenerate would
    otherwise write a migration that drops live tables and indexes."""
    base = server_url()
    name = f"jambo_check_{os.getpid()}_{secrets.token_hex(3)}"
    url = await create_database(base, name)
    try:
        await asyncio.to_thread(command.upgrade, _config(url), "head")
        await asyncio.to_thread(command.check, _config(url))  # raises on any difference
    finally:
        await drop_database(base, name)
