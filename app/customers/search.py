"""The filtered, sorted, paged customer list: every query of it, as Core statements
compiled once per shape and run on the raw read pool.

Filters and sort keys are named by store field; contracts map their own names onto these.
Text sort keys compare lower-cased (the functional indexes hold `lower(column), id`), and
every ordering ends with the id so that pages never overlap or skip a row.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, select

from app.customers.repository import COLUMNS, T
from app.customers.schemas import CustomerRecord
from app.db.compiled import Statement, compile_statement
from app.db.count_cache import cache_key, cached_count, cached_total_column
from app.db.database import Database
from app.db.patterns import (
    contains,
    contains_any_ignoring_case,
    contains_ignoring_case,
    equals_ignoring_case,
)

_RECORD_WIDTH = len(COLUMNS)

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


_SUBSTRING_FIELDS = ("address_line1", "address_line2", "address_city")

# The longest value each filterable field can hold: a filter value longer than that matches
# nothing, and would only cost the database (a parameter in a cached generic plan is folded
# per row).
FILTER_MAX_LENGTH: dict[str, int] = {
    name: int(T.c[name].type.length)  # type: ignore[attr-defined]
    for name in ("first_name", "last_name", *_SUBSTRING_FIELDS, "address_post_code")
}


def parameters(f: CustomerFilter) -> dict[str, object]:
    """The filter's values by parameter name; the sorted names alone fix the SQL's shape."""
    values: dict[str, object] = {}
    if f.first_name is not None:
        values["first_name"] = f.first_name
    if f.last_name is not None:
        values["last_name"] = f.last_name
    for field in _SUBSTRING_FIELDS:
        needles: tuple[str, ...] = getattr(f, field)
        if len(needles) == 1:
            values[f"{field}__one"] = contains(needles[0])
        elif needles:  # one array: `lower(column)` is then computed once per row
            values[f"{field}__any"] = [contains(needle) for needle in needles]
            values[f"{field}__shortest"] = min(len(needle) for needle in needles)
    for i, code in enumerate(f.address_post_code):
        values[f"address_post_code__{i}"] = code
    if f.updated_since is not None:
        values["updated_since"] = f.updated_since
    return values


def conditions(names: Sequence[str]) -> list[ColumnElement[bool]]:
    """The WHERE terms for the parameters `names` (as `parameters` names them)."""
    terms: list[ColumnElement[bool]] = []
    for field in ("first_name", "last_name"):
        if field in names:  # case-insensitive, exact
            terms.append(equals_ignoring_case(T.c[field], field))
    for field in _SUBSTRING_FIELDS:  # case-insensitive substrings, any of them
        if f"{field}__one" in names:
            terms.append(contains_ignoring_case(T.c[field], f"{field}__one"))
        elif f"{field}__any" in names:
            # A value shorter than the shortest needle contains none of them: that test
            # costs nothing beside LIKE's, and PostgreSQL runs the cheaper one first.
            shortest = bindparam(f"{field}__shortest", type_=Integer)
            terms.append(func.char_length(T.c[field]) >= shortest)
            terms.append(contains_any_ignoring_case(T.c[field], f"{field}__any"))
    codes = [n for n in names if n.startswith("address_post_code__")]
    if codes:  # exact, any of them
        terms.append(T.c.address_post_code.in_([bindparam(n) for n in codes]))
    if "updated_since" in names:
        terms.append(T.c.updated_at >= bindparam("updated_since"))
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


def _matching(
    names: tuple[str, ...], sort: tuple[SortKey, ...], *extra: ColumnElement[Any]
) -> Select[Any]:
    """SELECT every column (and `extra`) of the matching customers, ordered, `limit` rows."""
    return (
        select(*COLUMNS, *extra)
        .where(*conditions(names))
        .order_by(*ordering(sort))
        .limit(bindparam("limit", type_=Integer))
    )


# Statements are built and compiled once per shape (which filters, how many values, which
# order), not per request: building and compiling cost more than running them.
@lru_cache(maxsize=512)
def page_statement(names: tuple[str, ...], sort: tuple[SortKey, ...]) -> Statement:
    """SELECT one page of matching customers (parameters `names`, `offset` and `limit`)."""
    return compile_statement(_matching(names, sort).offset(bindparam("offset", type_=Integer)))


@lru_cache(maxsize=512)
def count_statement(names: tuple[str, ...]) -> Statement:
    """SELECT how many customers match (parameters `names`)."""
    return compile_statement(select(func.count()).select_from(T).where(*conditions(names)))


def _question(f: CustomerFilter) -> str:
    return f"v1 search {f!r}"


@lru_cache(maxsize=512)
def first_page_statement(names: tuple[str, ...], sort: tuple[SortKey, ...]) -> Statement:
    """The first page, with the count cache's answer for the filter alongside each row
    (`limit` and `count_key` besides `names`): usually the whole list in one round trip."""
    return compile_statement(_matching(names, sort, cached_total_column("customers")))


async def count(db: Database, f: CustomerFilter) -> int:
    """How many customers match the filter (cached until the table changes)."""
    values = parameters(f)
    stmt = count_statement(tuple(sorted(values)))
    return await cached_count(db, "customers", _question(f), stmt.sql, *stmt.args(values))


async def fetch_page(
    db: Database, f: CustomerFilter, sort: Sequence[SortKey], offset: int, limit: int
) -> list[CustomerRecord]:
    """One page of matching customers in the requested order."""
    values = parameters(f)
    stmt = page_statement(tuple(sorted(values)), tuple(sort))
    rows = await db.fetch(stmt.sql, *stmt.args(values | {"offset": offset, "limit": limit}))
    return [CustomerRecord(*r) for r in rows]


async def find(
    db: Database, f: CustomerFilter, sort: Sequence[SortKey], offset: int, limit: int
) -> Page:
    """A page of matching customers, sorted, and the total, on the raw read pool; counting
    only when neither the page nor the cache can tell."""
    if offset == 0:
        values = parameters(f)
        stmt = first_page_statement(tuple(sorted(values)), tuple(sort))
        key = cache_key(_question(f))
        rows = await db.fetch(stmt.sql, *stmt.args(values | {"limit": limit, "count_key": key}))
        records = [CustomerRecord(*r[:_RECORD_WIDTH]) for r in rows]
        if len(rows) < limit:  # a short first page is the whole result
            return Page(len(rows), records)
        total = rows[0][_RECORD_WIDTH]
        return Page(await count(db, f) if total is None else total, records)
    total = await count(db, f)
    # Past the end: skip the page query (an OFFSET beyond the rows would still scan them).
    records = await fetch_page(db, f, sort, offset, limit) if offset < total else []
    return Page(total, records)
