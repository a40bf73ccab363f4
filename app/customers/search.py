"""The filtered, sorted, paged customer list: every query of it, as Core statements.

Filters and sort keys are named by store field; contracts map their own names onto these.
Text sort keys compare lower-cased (the functional indexes hold `lower(column), id`), and
every ordering ends with the id so that pages never overlap or skip a row.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.counting import cached_count
from app.customers.repository import COLUMNS, T
from app.customers.schemas import CustomerRecord
from app.database import Database

# Sort key → the expression ordered on (the ones without an index of their own get one in
# migration 0002). NULLs sort as PostgreSQL does: after every value ascending, first descending.
SORT_KEYS: dict[str, ColumnElement[object]] = {
    "id": T.c.id,
    "first_name": func.lower(T.c.first_name),
    "last_name": func.lower(T.c.last_name),
    "email": func.lower(T.c.email),
    "dob": T.c.dob,
    "nationality": T.c.nationality,
    "updated_at": T.c.updated_at,
    "address_city": func.lower(T.c.address_city),
    "address_post_code": T.c.address_post_code,
}


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ordering term: a key of SORT_KEYS and its direction."""

    field: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class CustomerFilter:
    """What to match. Tuples mean "any of these"; empty or None means no condition."""

    first_name: str | None = None  # case-insensitive, exact
    last_name: str | None = None  # case-insensitive, exact
    address_line1: tuple[str, ...] = ()  # case-insensitive substrings
    address_line2: tuple[str, ...] = ()
    address_city: tuple[str, ...] = ()
    address_post_code: tuple[str, ...] = ()  # exact
    updated_since: dt.datetime | None = None  # updated at or after


@dataclass(frozen=True, slots=True)
class Page:
    """One page of customers and how many match in all."""

    total: int
    customers: Sequence[CustomerRecord]


def _escape_like(text: str) -> str:
    """A literal substring for LIKE: its own %, _ and backslash match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains_any(column: ColumnElement[str], needles: Sequence[str]) -> ColumnElement[bool]:
    # Plain ILIKE on the column (not lower(column) LIKE …) so pg_trgm GIN indexes serve it.
    return or_(*(column.ilike(f"%{_escape_like(n)}%", escape="\\") for n in needles))


def conditions(f: CustomerFilter) -> list[ColumnElement[bool]]:
    """The WHERE terms of a filter."""
    terms: list[ColumnElement[bool]] = []
    if f.first_name is not None:
        terms.append(func.lower(T.c.first_name) == func.lower(literal(f.first_name)))
    if f.last_name is not None:
        terms.append(func.lower(T.c.last_name) == func.lower(literal(f.last_name)))
    for column, needles in (
        (T.c.address_line1, f.address_line1),
        (T.c.address_line2, f.address_line2),
        (T.c.address_city, f.address_city),
    ):
        if needles:
            terms.append(_contains_any(column, needles))
    if f.address_post_code:
        terms.append(T.c.address_post_code.in_(f.address_post_code))
    if f.updated_since is not None:
        terms.append(T.c.updated_at >= f.updated_since)
    return terms


def ordering(sort: Sequence[SortKey]) -> list[ColumnElement[object]]:
    """ORDER BY terms: the given keys, then the id in the direction of the last key."""
    terms: list[ColumnElement[object]] = []
    for key in sort:
        expr = SORT_KEYS[key.field]
        terms.append(expr.desc() if key.descending else expr.asc())
        if key.field == "id":
            return terms  # unique: nothing after it can change the order
    # The id follows the last key's direction so (key, id) indexes can be read backwards.
    descending = sort[-1].descending if sort else False
    terms.append(T.c.id.desc() if descending else T.c.id.asc())
    return terms


def page_statement(
    f: CustomerFilter, sort: Sequence[SortKey], offset: int, limit: int
) -> Select[tuple[object, ...]]:
    """SELECT one page of matching customers."""
    return (
        select(*COLUMNS).where(*conditions(f)).order_by(*ordering(sort)).offset(offset).limit(limit)
    )


def count_statement(f: CustomerFilter) -> Select[int]:
    """SELECT how many customers match."""
    return select(func.count()).select_from(T).where(*conditions(f))


async def count(conn: AsyncConnection, f: CustomerFilter) -> int:
    """How many customers match the filter (cached until the table changes)."""
    return await cached_count(conn, "customers", count_statement(f), f"v1 search {f!r}")


async def fetch_page(
    conn: AsyncConnection, f: CustomerFilter, sort: Sequence[SortKey], offset: int, limit: int
) -> list[CustomerRecord]:
    """One page of matching customers in the requested order."""
    rows = (await conn.execute(page_statement(f, sort, offset, limit))).all()
    return [CustomerRecord.from_row(r) for r in rows]


async def find(
    conn: AsyncConnection, f: CustomerFilter, sort: Sequence[SortKey], offset: int, limit: int
) -> Page:
    """A page and the total, counting only when the page itself cannot tell the total."""
    if offset == 0:
        rows = await fetch_page(conn, f, sort, 0, limit)
        # A short first page is the whole result: no count query needed.
        total = len(rows) if len(rows) < limit else await count(conn, f)
        return Page(total, rows)
    total = await count(conn, f)
    # Past the end: skip the page query (an OFFSET beyond the rows would still scan them).
    rows = await fetch_page(conn, f, sort, offset, limit) if offset < total else []
    return Page(total, rows)


class CustomerSearch:
    """Runs list queries on an autocommit read connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def find(
        self, f: CustomerFilter, sort: Sequence[SortKey], offset: int, limit: int
    ) -> Page:
        """A page of matching customers, sorted, with the total count."""
        async with self.db.read() as conn:
            return await find(conn, f, sort, offset, limit)
