"""Alembic environment: async engine, URL from the settings (or the embedded server)."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.schema import SchemaItem

from app import models  # noqa: F401  (registers every table)
from app.config import get_settings
from app.db.base import Base
from app.db.engine import pooler_connect_args, resolve_database_url

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def include_object(
    obj: SchemaItem, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave out of autogenerate what the models cannot declare: the trigram indexes exist
    only where pg_trgm is available (migration 0001 creates them conditionally)."""
    return not (type_ == "index" and reflected and (name or "").endswith("_trgm"))


def _url() -> str:
    return config.attributes.get("database_url") or resolve_database_url(get_settings())


def run_migrations_offline() -> None:
    """Emit SQL without a database connection."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        include_object=include_object,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# Tables in the order live traffic locks them: the records first (customers, then what
# hangs off them), then the bookkeeping their triggers and writes touch. A migration takes
# every lock it may need up front in this order, so it can wait for live work but never
# deadlock with it; the lock timeout makes a wait that lasts fail the migration cleanly.
LOCK_ORDER = (
    "customers",
    "loyalty_members",
    "deletion_tokens",
    "email_codes",
    "api_clients",
    "sign_in_limits",
    "address_changes",
    "server_keys",
    "idempotency_keys",
    "audit_events",
    "table_generations",
    "count_cache",
)


def _lock_in_order(connection: Connection) -> None:
    present = set(
        connection.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).scalars()
    )
    rest = sorted(present - set(LOCK_ORDER) - {"alembic_version"})
    for table in [t for t in LOCK_ORDER if t in present] + rest:
        connection.exec_driver_sql(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')


def _has_work() -> bool:
    """Whether this run may apply a migration: an upgrade to a head already reached does
    nothing and must not lock live tables (every `jambo serve` runs one)."""
    try:
        destination = context.get_revision_argument()
    except KeyError:  # `alembic check` and autogenerate compare; they migrate nothing
        return False
    if destination in ("head", "heads"):
        current = set(context.get_context().get_current_heads())
        return current != set(context.script.get_heads())
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, include_object=include_object
    )
    lock_timeout = int(get_settings().migration_lock_timeout_seconds * 1000)
    with context.begin_transaction():
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {lock_timeout}")
        if _has_work():
            _lock_in_order(connection)
        context.run_migrations()


async def run_migrations_online() -> None:
    """Run the migrations over an asyncpg connection."""
    # Through a transaction pooler too (DB_PGBOUNCER), though DDL is best sent directly.
    engine = create_async_engine(_url(), connect_args=pooler_connect_args(get_settings()))
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
