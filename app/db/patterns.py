"""LIKE patterns built from user text, and the case-insensitive comparisons that use them.

A comparison lowers its parameter once per statement (a scalar subquery: an InitPlan) and
the column once per row: `ILIKE` and `lower(column) = lower($1)` lower the parameter again
for every row they compare, which in a pass over a million rows (a cached generic plan
that filters while walking an index in order) made a 200-character term cost seconds.
"""

from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnClause

LIKE_ESCAPE = "\\"  # LIKE's own default: `LIKE ANY (…)` takes no ESCAPE clause


def contains(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own %, _ and backslash literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _lowered(name: str) -> Any:
    """The parameter `name`, lower-cased once per statement."""
    return select(func.lower(bindparam(name, type_=String))).scalar_subquery()


def equals_ignoring_case(column: ColumnClause[Any], name: str) -> ColumnElement[bool]:
    """`lower(column)` equals the parameter `name` lower-cased (an index on lower(column)
    serves it)."""
    return func.lower(column) == _lowered(name)


def contains_ignoring_case(column: ColumnClause[Any], name: str) -> ColumnElement[bool]:
    """`lower(column)` matches the `contains` pattern in parameter `name`, any case (a
    trigram index on lower(column) serves it)."""
    return func.lower(column).like(_lowered(name))


def contains_any_ignoring_case(column: ColumnClause[Any], name: str) -> ColumnElement[bool]:
    """`lower(column)` matches any of the `contains` patterns in the array parameter `name`:
    the column lowered once per row, the patterns once per statement."""
    patterns = bindparam(name, type_=ARRAY(String))
    value = func.unnest(patterns).table_valued("value").render_derived()
    lowered = select(func.array_agg(func.lower(value.c.value))).scalar_subquery()
    # The cast makes ANY read one array (a scalar subquery), not the subquery's rows.
    return func.lower(column).like(any_(cast(lowered, ARRAY(String))))
