"""Every loyalty-member query."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.base import table_of
from app.db.patterns import LIKE_ESCAPE, contains
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
# nothing by itself (one round trip, where BEGIN … COMMIT took three).
UPSERT = """
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
    RETURNING (xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted) FROM written
"""


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
        pattern = contains(query.search)
        stmt = stmt.where(
            or_(
                T.c.client_name.ilike(pattern, escape=LIKE_ESCAPE),
                T.c.cardno.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    if query.is_male is not None:
        stmt = stmt.where(T.c.is_male.is_(query.is_male))
    return stmt


async def page(conn: AsyncConnection, query: ListQuery) -> tuple[int, list[MemberRecord]]:
    """The total matching and one ordered window of members."""
    total = (await conn.execute(_filtered(query, select(func.count()).select_from(T)))).scalar()
    order: list[ColumnElement[Any]] = []
    for name in query.ordering:
        column = ORDERABLE[name.lstrip("-")]
        order.append(column.desc() if name.startswith("-") else column.asc())
    order.append(T.c.id)  # the stable tiebreak: creation order
    stmt = _filtered(query, select(*COLUMNS)).order_by(*order)
    rows = (await conn.execute(stmt.offset(query.offset).limit(query.limit))).all()
    return int(total or 0), [MemberRecord.from_row(r) for r in rows]


async def get(conn: AsyncConnection, loyalty_id: str) -> MemberRecord | None:
    """One member by its loyalty_id."""
    row = (await conn.execute(select(*COLUMNS).where(T.c.loyalty_id == loyalty_id))).first()
    return MemberRecord.from_row(row) if row else None


async def upsert(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert or replace rows with distinct loyalty_ids (and their input position `ord`) in
    one statement (give it an autocommit connection); returns how many were inserted."""
    if not rows:
        return 0
    # One JSON text, not seven arrays: asyncpg encodes arrays (numerics, dates) element by
    # element while holding the event loop, ~0.3 s for 10,000 rows; a string is one copy.
    payload = orjson.dumps(rows, default=str).decode()  # Decimal → "1.5", dates ISO
    result = await conn.exec_driver_sql(UPSERT, (payload,))
    return int(result.scalar_one())


async def update_one(
    conn: AsyncConnection, loyalty_id: str, values: dict[str, Any]
) -> MemberRecord | None:
    """Change (and possibly rename) a member; None when it does not exist."""
    stmt = (
        update(T)
        .where(T.c.loyalty_id == loyalty_id)
        .values(**values, updated_at=func.now())
        .returning(*COLUMNS)
    )
    try:
        row = (await conn.execute(stmt)).first()
    except IntegrityError as exc:
        if "loyalty_id" in str(exc.orig):
            raise Invalid({"loyalty_id": [TAKEN_MSG]}) from exc
        raise
    return MemberRecord.from_row(row) if row else None


async def delete_one(conn: AsyncConnection, loyalty_id: str) -> bool:
    """Delete a member; whether it existed."""
    result = await conn.execute(delete(T).where(T.c.loyalty_id == loyalty_id).returning(T.c.id))
    return result.first() is not None


async def stream_all(conn: AsyncConnection, batch: int = 5000) -> AsyncIterator[MemberRecord]:
    """Every member in creation order, fetched in batches (server-side cursor)."""
    result = await conn.stream(select(*COLUMNS).order_by(T.c.id).execution_options(yield_per=batch))
    async for rows in result.partitions(batch):  # one await per batch, not per row
        for row in rows:
            yield MemberRecord.from_row(row)
