"""Every customer query."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
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
from app.customers.validation import address_key, key_of_normalized
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
    return "uq_customers_email_key" in str(exc.orig)


async def get(conn: AsyncConnection, customer_id: uuid.UUID) -> CustomerRecord | None:
    """One customer by id."""
    row = (await conn.execute(select(*COLUMNS).where(T.c.id == customer_id))).first()
    return CustomerRecord.from_row(row) if row else None


async def stored_fields(conn: AsyncConnection, customer_id: uuid.UUID) -> dict[str, Any] | None:
    """Every stored column of one customer (the export's: derived ones included)."""
    row = (await conn.execute(select(T).where(T.c.id == customer_id))).first()
    return dict(row._mapping) if row else None


async def exists(conn: AsyncConnection, customer_id: uuid.UUID) -> bool:
    """Whether the id names a customer."""
    return (await conn.execute(select(T.c.id).where(T.c.id == customer_id))).first() is not None


async def find_by_address(conn: AsyncConnection, address: str) -> CustomerRecord | None:
    """The customer whose e-mail address is this one (compared by `address_key`)."""
    key = address_key(address)
    row = (await conn.execute(select(*COLUMNS).where(T.c.email_key == key))).first()
    return CustomerRecord.from_row(row) if row else None


async def address_taken(conn: AsyncConnection, address: str) -> bool:
    """Whether some customer has this e-mail address."""
    found = await conn.execute(select(T.c.id).where(T.c.email_key == address_key(address)))
    return found.first() is not None


def _keyed(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with the e-mail's comparison key beside the e-mail, when one is set."""
    if "email" not in values:
        return values
    email = values["email"]  # as the rules left it: checked and normalised
    return {**values, "email_key": key_of_normalized(email) if email else None}


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
    bookkeeping: dict[str, Any] = {"version": T.c.version + 1, "updated_at": func.now()}
    if "email" in names:  # its comparison key follows it (not audited: not a field)
        bookkeeping["email_key"] = bindparam("email_key", type_=T.c.email_key.type)
    return audit.audited_update(
        T,
        condition,
        names,
        bookkeeping,
        COLUMNS,
        action="customer.updated",
        subject=lambda _t: bindparam("subject", type_=String),
        previous=("email",),
    )


async def insert_one(conn: AsyncConnection, values: dict[str, Any], actor: str) -> CustomerRecord:
    """Insert a customer and its audit line in one statement; a taken e-mail raises Conflict."""
    written = [k for k, v in values.items() if v is not None and k != "id"]
    values = _keyed(values)
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


@dataclass(frozen=True, slots=True)
class Updated:
    """A customer as an update left them, and the e-mail address they had before it."""

    record: CustomerRecord
    previous_email: str | None


async def update_one(
    conn: AsyncConnection,
    customer_id: uuid.UUID,
    values: dict[str, Any],
    actor: str,
    expected_version: int | None = None,
) -> Updated | None:
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
    if "email" in values:  # (a parameter named after a column would join the SET clause)
        params["email_key"] = _keyed(values)["email_key"]
    try:
        row = (await conn.execute(stmt, params)).first()
    except IntegrityError as exc:
        if _is_email_clash(exc):
            raise Conflict("A customer with this email already exists.", field="email") from exc
        raise
    if row is None:
        return None
    previous = row[-1] if "email" in values else None
    return Updated(CustomerRecord(*row[: len(COLUMNS)]), previous)


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
