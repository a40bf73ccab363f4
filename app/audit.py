"""Audit lines: the action, the record's type and id, the actor and the names of the fields
written or changed, never personal data (no values).

A write and its line are one statement where the write is one: the write runs as a
data-modifying CTE and the line is inserted from what it returned, so they commit together
and the hot write path pays no extra round trip.
"""

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Delete,
    Insert,
    Select,
    String,
    Table,
    Update,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.selectable import CTE

from app.db.base import Base, table_of
from app.ids import render_ulid

# A longer identity is kept as a hash (see actor_label), never cut.
ACTOR_MAX = 100


class AuditEvent(Base):
    """What happened, to which record id, by whom: never personal data. Each line is also
    an event of the change feed (app/events/)."""

    __tablename__ = "audit_events"

    # Drawn only once the writing transaction has an id (app/events/feed.py says why).
    id: Mapped[int] = mapped_column(
        BigInteger,
        primary_key=True,
        server_default=text(
            "CASE WHEN pg_current_xact_id() IS NOT NULL"
            " THEN nextval('audit_events_id_seq'::regclass) END"
        ),
    )
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    action: Mapped[str] = mapped_column(String(50))
    # `customer` (subject_id: its ULID) or `loyalty_member` (subject_id: its internal id,
    # which survives a rename of loyalty_id).
    record_type: Mapped[str] = mapped_column(String(30))
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(ACTOR_MAX))
    # The names of the fields written or changed: never their values.
    fields: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))
    # The key a contract names the record by, where it is not subject_id (a member's
    # loyalty_id at the time of the write).
    record_key: Mapped[str | None] = mapped_column(String(50))


A = table_of(AuditEvent)
LINE_COLUMNS = ["action", "record_type", "subject_id", "actor", "fields", "record_key"]
_FIELDS = "audit_fields"
_SUBJECT = "audit_subject"
_KEY = "audit_key"


def actor_label(actor: str) -> str:
    """Who did it, as an audit line keeps it: the whole identity, or for one longer than the
    column a SHA-256 of it beside its role (no two identities ever share a label)."""
    if len(actor) <= ACTOR_MAX:
        return actor
    role, _, _sub = actor.partition(":")
    digest = hashlib.sha256(actor.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{role[:20]}:sha256:{digest}"


def record_type_of(action: str) -> str:
    """`customer.deleted` → `customer`."""
    return action.partition(".")[0]


async def record(
    conn: AsyncConnection,
    action: str,
    subject: uuid.UUID | str,
    actor: str,
    fields: Sequence[str] = (),
    key: str | None = None,
) -> None:
    """Append one audit line inside the caller's transaction."""
    subject_id = render_ulid(subject) if isinstance(subject, uuid.UUID) else subject
    await conn.execute(
        insert(A).values(
            action=action,
            record_type=record_type_of(action),
            subject_id=subject_id,
            actor=actor_label(actor),
            fields=sorted(fields),
            record_key=key,
        )
    )


# Statements are built once per shape and cached (building a CTE statement costs more than
# running it); what varies per request travels in these parameters (`line_params`).
ACTOR: ColumnElement[Any] = bindparam("audit_actor", type_=String)
# The names as one comma-joined string: no per-request ARRAY bind processing.
FIELDS: ColumnElement[Any] = func.string_to_array(bindparam("audit_fields", type_=String), ",")


def line_params(actor: str, fields: Iterable[str] = ()) -> dict[str, str]:
    """The per-request values of a cached statement's audit line."""
    return {"audit_actor": actor_label(actor), "audit_fields": ",".join(sorted(fields))}


def with_line(
    write: Insert | Update | Delete,
    returning: Sequence[ColumnElement[Any]],
    *,
    action: str,
    subject: ColumnElement[Any],
    fields: ColumnElement[Any] = FIELDS,
    key: ColumnElement[Any] | None = None,
) -> Select[Any]:
    """`write … RETURNING returning` as one statement that also appends an audit line for
    each row written (actor: the `audit_actor` parameter); selects `returning` (by name).
    `subject`, `fields` and `key` are evaluated in the write's RETURNING, so they can use
    the written row."""
    labelled = [fields.label(_FIELDS), subject.label(_SUBJECT)]
    labelled.append((key if key is not None else null()).label(_KEY))
    written: CTE = write.returning(*returning, *labelled).cte("written")
    line = insert(A).from_select(
        LINE_COLUMNS,
        select(
            literal(action, String),
            literal(record_type_of(action), String),
            written.c[_SUBJECT],
            ACTOR,
            written.c[_FIELDS],
            written.c[_KEY],
        ),
    )
    return select(*(written.c[c.name] for c in returning)).add_cte(line.cte("audit_line"))


def audited_update(
    table: Table,
    condition: ColumnElement[bool],
    names: Sequence[str],
    bookkeeping: dict[str, Any],
    returning: Sequence[ColumnElement[Any]],
    *,
    action: str,
    subject: Callable[[Table], ColumnElement[Any]],
    previous: Sequence[str] = (),
    record_key: Callable[[Table], ColumnElement[Any]] | None = None,
) -> Select[Any]:
    """UPDATE the rows matching `condition`: each of `names` from the parameter `v_{name}`
    (audited: the names of those that changed) and `bookkeeping` (not audited), plus their
    audit lines, in one statement; selects `returning`, then the `previous` columns' values
    from before the update (`previous_{name}`).

    The row is locked by a FOR UPDATE subquery first, so `old` is the version this update
    replaces even under concurrent writers."""
    key = next(iter(table.primary_key.columns))
    old = select(table).where(condition).with_for_update().subquery("old")
    cases: list[ColumnElement[Any]] = [
        case((old.c[name].is_distinct_from(table.c[name]), literal(name, String)))
        for name in sorted(names)
    ] or [null()]
    changed = func.array_remove(array[Any](cases, type_=String), null())
    values = {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in names}
    write = update(table).where(table.c[key.name] == old.c[key.name])
    write = write.values(**values, **bookkeeping)
    before = [old.c[name].label(f"previous_{name}") for name in previous]
    return with_line(
        write,
        [*returning, *before],
        action=action,
        subject=subject(table),
        fields=changed,
        key=record_key(table) if record_key is not None else None,
    )


def value_params(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as the `v_{name}` parameters of a cached statement."""
    return {f"v_{name}": value for name, value in values.items()}


async def record_members_of_customer(
    conn: AsyncConnection, customer_id: uuid.UUID, action: str, actor: str
) -> None:
    """One line per loyalty membership of a customer (before a cascading delete). The rows
    are locked first, so a line is numbered after any write to the member it waited for
    (the change feed's order per record)."""
    await conn.execute(
        text(
            "INSERT INTO audit_events (action, record_type, subject_id, actor, fields, record_key)"
            " SELECT :action, 'loyalty_member', id::text, :actor, '{}', loyalty_id"
            " FROM loyalty_members WHERE customer_id = :customer_id FOR UPDATE"
        ),
        {"action": action, "actor": actor_label(actor), "customer_id": customer_id},
    )


async def trail(conn: AsyncConnection, subjects: dict[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Every line about the given records (record type → ids), oldest first."""
    clauses = [
        (A.c.record_type == kind) & A.c.subject_id.in_(ids) for kind, ids in subjects.items() if ids
    ]
    if not clauses:
        return []
    condition = clauses[0]
    for clause in clauses[1:]:
        condition = condition | clause
    rows = await conn.execute(
        select(A.c.at, *(A.c[name] for name in LINE_COLUMNS)).where(condition).order_by(A.c.id)
    )
    return [dict(row._mapping) for row in rows]
