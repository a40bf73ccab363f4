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


async def test_addresses_that_collide_under_the_normal_form_are_reported(capfd) -> None:
    """Migration 0009 keys every address by NFKC + case-fold; rows that lower() kept apart
    but the normal form makes one: the oldest keeps the address, the others are named."""
    base = server_url()
    name = f"jambo_keys_{os.getpid()}_{secrets.token_hex(3)}"
    url = await create_database(base, name)
    try:
        await asyncio.to_thread(command.upgrade, _config(url), "0008")
        conn = await asyncpg.connect(_plain(url))
        try:
            await conn.execute(
                "INSERT INTO customers (id, first_name, last_name, email, created_at) VALUES"
                " ('00000000-0000-0000-0000-000000000001', 'A', 'A', 'stra\u00dfe@x.org',"
                "  now() - interval '2 days'),"
                " ('00000000-0000-0000-0000-000000000002', 'B', 'B', 'STRASSE@x.org', now()),"
                " ('00000000-0000-0000-0000-000000000003', 'C', 'C', 'C@x.org', now()),"
                " ('00000000-0000-0000-0000-000000000004', 'D', 'D', NULL, now())"
            )
            await asyncio.to_thread(command.upgrade, _config(url), "0009")
            keys = dict(await conn.fetch("SELECT id::text, email_key FROM customers"))
            emails = await conn.fetchval("SELECT count(email) FROM customers")
        finally:
            await conn.close()
        assert keys == {
            "00000000-0000-0000-0000-000000000001": "strasse@x.org",
            "00000000-0000-0000-0000-000000000002": None,
            "00000000-0000-0000-0000-000000000003": "c@x.org",
            "00000000-0000-0000-0000-000000000004": None,
        }
        assert emails == 3  # nobody's stored address was touched
        report = capfd.readouterr().err
        assert "1 e-mail address(es) were shared by 2 customers" in report
        assert "00000000-0000-0000-0000-000000000002" in report and "x.org" not in report
    finally:
        await drop_database(base, name)
