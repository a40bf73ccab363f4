"""Every loyalty-member query."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    bindparam,
    cast,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app import audit
from app.db.base import table_of
from app.db.patterns import contains, contains_ignoring_case
from app.errors import Invalid
from app.loyalty.models import LoyaltyMember
from app.loyalty.schemas import FIELDS, ORDERING_FIELDS, TAKEN_MSG, MemberRecord

T = table_of(LoyaltyMember)
COLUMNS = [T.c[name] for name in FIELDS]
# `identifier` is the seed's name for ordering by loyalty_id.
ORDERABLE = {name: T.c["loyalty_id" if name == "identifier" else name] for name in ORDERING_FIELDS}

# One statement for a whole batch. The rows hold distinct keys; ids are drawn in input
# order (`ord`, so the list's creation order is the upload's order), then rows are written
# sorted by key, so overlapping uploads lock their rows in the same order (no deadlock) and a
# later upload waits for, then updates, what an earlier one inserted.
# A single statement needs no explicit transaction: on an autocommit connection it is all or
# nothing by itself (one round trip, where BEGIN … COMMIT took three). The same statement
# writes one audit line per member written: the names of the fields it set (insert) or
# changed (update, against `b`, the row as the statement's snapshot saw it: every part of
# one statement reads that snapshot, so the rows it writes are not visible to it). `b` is
# looked up only for a row the upsert updated (the fenced subquery turns `NOT w.inserted`
# into a filter checked before the index look-up, not after), by key, one index probe each.
# (A `before` CTE joined to the whole input probed the index for new members too, 1.5 ms
# of a 1,000-row insert; inlined, it rescanned the input for every member found, n².)
_CHANGED = ", ".join(
    f"CASE WHEN (w.inserted AND w.{f} IS NOT NULL)"
    f" OR (NOT w.inserted AND w.{f} IS DISTINCT FROM b.{f}) THEN '{f}' END"
    for f in sorted(FIELDS)  # names in alphabetical order, as every audit line lists them
)
UPSERT = f"""
    WITH input AS (
        SELECT * FROM json_to_recordset($1::json) AS u(
            ord integer, loyalty_id varchar, cardno varchar, discount numeric,
            client_name varchar, client_birthday date, is_male boolean
        )
    ), numbered AS MATERIALIZED (
        SELECT nextval((SELECT pg_get_serial_sequence('loyalty_members', 'id')::regclass)) AS id,
            input.*
        FROM input ORDER BY ord
    ), written AS (
        INSERT INTO loyalty_members
            (id, loyalty_id, cardno, discount, client_name, client_birthday, is_male)
        SELECT id, loyalty_id, cardno, discount, client_name, client_birthday, is_male
        FROM numbered ORDER BY loyalty_id
        ON CONFLICT (loyalty_id) DO UPDATE SET
            cardno = excluded.cardno,
            discount = excluded.discount,
            client_name = excluded.client_name,
            client_birthday = excluded.client_birthday,
            is_male = excluded.is_male,
            updated_at = now()
        RETURNING id, {", ".join(FIELDS)}, (xmax = 0) AS inserted
    ), audit_line AS (
        INSERT INTO audit_events (action, record_type, subject_id, actor, fields, record_key)
        SELECT CASE WHEN w.inserted THEN 'loyalty_member.created'
                ELSE 'loyalty_member.updated' END,
            'loyalty_member', w.id::text, $2::varchar,
            array_remove(ARRAY[{_CHANGED}]::varchar[], NULL), w.loyalty_id
        FROM written w LEFT JOIN LATERAL (
            SELECT m.loyalty_id, m.cardno, m.discount, m.client_name, m.client_birthday, m.is_male
            FROM loyalty_members m WHERE NOT w.inserted AND m.loyalty_id = w.loyalty_id
            OFFSET 0
        ) b ON true
        ORDER BY w.loyalty_id  -- the lines (the feed's events) in the order rows were written
    )
    SELECT count(*) FILTER (WHERE inserted) FROM written
"""


def _subject(table: Table) -> ColumnElement[Any]:
    """A member's audit subject: its internal id, which a rename of loyalty_id keeps."""
    return cast(table.c.id, String)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A page request: filters, ordering (column names, '-' for descending), window."""

    offset: int
    limit: int
    search: str | None = None
    is_male: bool | None = None
    ordering: tuple[str, ...] = ()


def _filtered(query: ListQuery, stmt: Select[Any]) -> Select[Any]:
    if query.search:
        stmt = stmt.where(
            or_(
                contains_ignoring_case(T.c.client_name, "search"),
                contains_ignoring_case(T.c.cardno, "search"),
            )
        )
    if query.is_male is not None:
        stmt = stmt.where(T.c.is_male.is_(query.is_male))
    return stmt


async def page(conn: AsyncConnection, query: ListQuery) -> tuple[int, list[MemberRecord]]:
    """The total matching and one ordered window of members."""
    params = {"search": contains(query.search)} if query.search else {}
    counting = _filtered(query, select(func.count()).select_from(T))
    total = (await conn.execute(counting, params)).scalar()
    order: list[ColumnElement[Any]] = []
    for name in query.ordering:
        column = ORDERABLE[name.lstrip("-")]
        order.append(column.desc() if name.startswith("-") else column.asc())
    order.append(T.c.id)  # the stable tiebreak: creation order
    stmt = _filtered(query, select(*COLUMNS)).order_by(*order)
    rows = (await conn.execute(stmt.offset(query.offset).limit(query.limit), params)).all()
    return int(total or 0), [MemberRecord.from_row(r) for r in rows]


async def get(conn: AsyncConnection, loyalty_id: str) -> MemberRecord | None:
    """One member by its loyalty_id."""
    row = (await conn.execute(select(*COLUMNS).where(T.c.loyalty_id == loyalty_id))).first()
    return MemberRecord.from_row(row) if row else None


async def upsert(conn: AsyncConnection, rows: Sequence[dict[str, Any]], actor: str) -> int:
    """Insert or replace rows with distinct loyalty_ids (and their input position `ord`) in
    one statement with their audit lines (give it an autocommit connection); returns how
    many were inserted."""
    if not rows:
        return 0
    # One JSON text, not seven arrays: asyncpg encodes arrays (numerics, dates) element by
    # element while holding the event loop, ~0.3 s for 10,000 rows; a string is one copy.
    payload = orjson.dumps(rows, default=str).decode()  # Decimal → "1.5", dates ISO
    result = await conn.exec_driver_sql(UPSERT, (payload, audit.actor_label(actor)))
    return int(result.scalar_one())


@lru_cache(maxsize=64)
def _update_statement(names: tuple[str, ...]) -> Select[Any]:
    """UPDATE of these columns of one member and its audit line, built once per shape."""
    return audit.audited_update(
        T,
        T.c.loyalty_id == bindparam("key", type_=T.c.loyalty_id.type),
        names,
        {"updated_at": func.now()},
        COLUMNS,
        action="loyalty_member.updated",
        subject=_subject,
        record_key=lambda table: table.c.loyalty_id,  # the new one, after a rename
    )


_DELETE = audit.with_line(
    delete(T).where(T.c.loyalty_id == bindparam("key", type_=T.c.loyalty_id.type)),
    [T.c.id],
    action="loyalty_member.deleted",
    subject=_subject(T),
    key=T.c.loyalty_id,
)


async def update_one(
    conn: AsyncConnection, loyalty_id: str, values: dict[str, Any], actor: str
) -> MemberRecord | None:
    """Change (and possibly rename) a member, with its audit line; None when it does not
    exist."""
    params = {**audit.value_params(values), "key": loyalty_id, **audit.line_params(actor)}
    try:
        row = (await conn.execute(_update_statement(tuple(sorted(values))), params)).first()
    except IntegrityError as exc:
        if "loyalty_id" in str(exc.orig):
            raise Invalid({"loyalty_id": [TAKEN_MSG]}) from exc
        raise
    return MemberRecord.from_row(row) if row else None


async def delete_one(conn: AsyncConnection, loyalty_id: str, actor: str) -> bool:
    """Delete a member with its audit line; whether it existed."""
    params = {"key": loyalty_id, **audit.line_params(actor)}
    return (await conn.execute(_DELETE, params)).first() is not None


async def for_customer(conn: AsyncConnection, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every stored field of the memberships linked to a customer, oldest first."""
    rows = await conn.execute(select(T).where(T.c.customer_id == customer_id).order_by(T.c.id))
    return [dict(row._mapping) for row in rows]


async def stream_all(conn: AsyncConnection, batch: int = 5000) -> AsyncIterator[MemberRecord]:
    """Every member in creation order, fetched in batches (server-side cursor)."""
    result = await conn.stream(select(*COLUMNS).order_by(T.c.id).execution_options(yield_per=batch))
    async for rows in result.partitions(batch):  # one await per batch, not per row
        for row in rows:
            yield MemberRecord.from_row(row)
