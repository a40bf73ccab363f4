"""Every customer query."""

import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app import audit
from app.customers.models import Customer
from app.customers.schemas import CustomerRecord
from app.db.base import table_of
from app.db.count_cache import cached_count
from app.db.database import Database
from app.errors import Conflict
from app.ids import render_ulid

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


@lru_cache(maxsize=256)
def _insert_statement(names: tuple[str, ...]) -> Select[Any]:
    """INSERT of these columns and its audit line, built once per set of columns."""
    values = {name: bindparam(f"v_{name}", type_=T.c[name].type) for name in names}
    return audit.with_line(
        insert(T).values(values),
        COLUMNS,
        action="customer.created",
        subject=bindparam("subject", type_=String),
    )


@lru_cache(maxsize=256)
def _update_statement(names: tuple[str, ...], versioned: bool) -> Select[Any]:
    """UPDATE of these columns (optionally only at a version) and its audit line."""
    condition: ColumnElement[bool] = T.c.id == bindparam("customer_id", type_=T.c.id.type)
    if versioned:
        condition = condition & (T.c.version == bindparam("expected_version", type_=Integer))
    return audit.audited_update(
        T,
        condition,
        names,
        {"version": T.c.version + 1, "updated_at": func.now()},
        COLUMNS,
        action="customer.updated",
        subject=lambda _t: bindparam("subject", type_=String),
    )


async def insert_one(conn: AsyncConnection, values: dict[str, Any], actor: str) -> CustomerRecord:
    """Insert a customer and its audit line in one statement; a taken e-mail raises Conflict."""
    written = [k for k, v in values.items() if v is not None and k != "id"]
    params = {
        **audit.value_params(values),
        "subject": render_ulid(values["id"]),
        **audit.line_params(actor, written),
    }
    try:
        row = (await conn.execute(_insert_statement(tuple(sorted(values))), params)).one()
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
    stmt = _update_statement(tuple(sorted(values)), expected_version is not None)
    params = {
        **audit.value_params(values),
        "customer_id": customer_id,
        "expected_version": expected_version,
        "subject": render_ulid(customer_id),
        **audit.line_params(actor),
    }
    try:
        row = (await conn.execute(stmt, params)).first()
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
