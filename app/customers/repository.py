"""Every customer query."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, delete, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.counting import cached_count
from app.customers.ids import render_ulid
from app.customers.models import Customer
from app.customers.schemas import CustomerRecord
from app.database import Database
from app.db import table_of
from app.errors import Conflict
from app.privacy import audit

T = table_of(Customer)
COLUMNS = [T.c[name] for name in CustomerRecord.__slots__]


# The by-id read is the hottest query: plain SQL for the raw read pool, columns in the
# order of CustomerRecord's fields.
SELECT_ALL = f"SELECT {', '.join(CustomerRecord.__slots__)} FROM customers"
SELECT_BY_ID = f"{SELECT_ALL} WHERE id = $1"


async def fetch_by_id(db: Database, customer_id: uuid.UUID) -> CustomerRecord | None:
    """One customer by id, in one round trip."""
    row = await db.fetchrow(SELECT_BY_ID, customer_id)
    return CustomerRecord(*row) if row else None


def _is_email_clash(exc: IntegrityError) -> bool:
    return "uq_customers_lower_email" in str(exc.orig)


async def get(conn: AsyncConnection, customer_id: uuid.UUID) -> CustomerRecord | None:
    """One customer by id."""
    row = (await conn.execute(select(*COLUMNS).where(T.c.id == customer_id))).first()
    return CustomerRecord.from_row(row) if row else None


async def exists(conn: AsyncConnection, customer_id: uuid.UUID) -> bool:
    """Whether the id names a customer."""
    return (await conn.execute(select(T.c.id).where(T.c.id == customer_id))).first() is not None


async def find_by_email(conn: AsyncConnection, email: str) -> CustomerRecord | None:
    """The customer whose e-mail matches, ignoring case."""
    row = (
        await conn.execute(select(*COLUMNS).where(func.lower(T.c.email) == email.lower()))
    ).first()
    return CustomerRecord.from_row(row) if row else None


async def insert_one(conn: AsyncConnection, values: dict[str, Any], actor: str) -> CustomerRecord:
    """Insert a customer and its audit line in one statement; a taken e-mail raises Conflict."""
    written = sorted(k for k, v in values.items() if v is not None and k != "id")
    stmt = audit.with_line(
        insert(T).values(**values),
        COLUMNS,
        action="customer.created",
        actor=actor,
        subject=literal(render_ulid(values["id"]), String),
        fields=audit.names(written),
    )
    try:
        row = (await conn.execute(stmt)).one()
    except IntegrityError as exc:
        if _is_email_clash(exc):
            raise Conflict("A customer with this email already exists.", field="email") from exc
        raise
    return CustomerRecord.from_row(row)


async def update_one(
    conn: AsyncConnection,
    customer_id: uuid.UUID,
    values: dict[str, Any],
    actor: str,
    expected_version: int | None = None,
) -> CustomerRecord | None:
    """Apply changes, bump the version, audit the names of the fields that changed; None
    when the id (or expected version) does not match."""
    condition: ColumnElement[bool] = T.c.id == customer_id
    if expected_version is not None:
        condition = condition & (T.c.version == expected_version)
    ulid = render_ulid(customer_id)
    stmt = audit.audited_update(
        T,
        condition,
        values,
        {"version": T.c.version + 1, "updated_at": func.now()},
        COLUMNS,
        action="customer.updated",
        actor=actor,
        subject=lambda _t: literal(ulid, String),
    )
    try:
        row = (await conn.execute(stmt)).first()
    except IntegrityError as exc:
        if _is_email_clash(exc):
            raise Conflict("A customer with this email already exists.", field="email") from exc
        raise
    return CustomerRecord.from_row(row) if row else None


async def delete_one(
    conn: AsyncConnection, customer_id: uuid.UUID, expected_version: int | None = None
) -> bool:
    """Delete a customer (the foreign keys cascade to every row of theirs)."""
    condition: ColumnElement[bool] = T.c.id == customer_id
    if expected_version is not None:
        condition = condition & (T.c.version == expected_version)
    result = await conn.execute(delete(T).where(condition).returning(T.c.id))
    return result.first() is not None


_PAGE_BY_ID = f"{SELECT_ALL} ORDER BY id OFFSET $1 LIMIT $2"


async def page_in_creation_order(
    db: Database, offset: int, limit: int
) -> tuple[int, Sequence[CustomerRecord]]:
    """Total count and one page ordered by id (ULIDs sort by creation time)."""
    total = await cached_count(db, "customers", "all customers", "SELECT count(*) FROM customers")
    rows = await db.fetch(_PAGE_BY_ID, offset, limit)
    return total, [CustomerRecord(*r) for r in rows]
