"""Sign-in limits per address across codes, kept in PostgreSQL (every worker sees them).

Each customer's row holds the times of its wrong guesses and mailed codes in the last hour
(sliding windows, at most a handful of entries) and when a guessing lock ends. The row is
locked for the transaction that reads it, so concurrent requests are counted one by one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, literal_column, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth.models import SignInLimit
from app.db.base import table_of

LIMITS = table_of(SignInLimit)
HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Limits:
    """A customer's limits row as read (and locked) in the current transaction."""

    customer_id: uuid.UUID
    now: dt.datetime
    locked_until: dt.datetime | None
    wrong_guesses: list[dt.datetime]
    codes_mailed: list[dt.datetime]

    @property
    def locked(self) -> bool:
        """Whether the address may not sign in now (too many wrong guesses lately)."""
        return self.locked_until is not None and self.locked_until > self.now

    def recent(self, times: list[dt.datetime]) -> list[dt.datetime]:
        return [t for t in times if t > self.now - HOUR]


async def lock(conn: AsyncConnection, customer_id: uuid.UUID) -> Limits:
    """The customer's limits row, created when missing and locked until the transaction ends."""
    stmt = (
        insert(LIMITS)
        .values(customer_id=customer_id)
        .on_conflict_do_update(
            index_elements=[LIMITS.c.customer_id],
            set_={"locked_until": literal_column("sign_in_limits.locked_until")},
        )
        .returning(
            LIMITS.c.locked_until,
            LIMITS.c.wrong_guesses,
            LIMITS.c.codes_mailed,
            func.now().label("now"),
        )
    )
    row = (await conn.execute(stmt)).one()
    return Limits(customer_id, row.now, row.locked_until, row.wrong_guesses, row.codes_mailed)


async def take_mail_turn(conn: AsyncConnection, limits: Limits, per_hour: int) -> bool:
    """Count one mailed code; False (nothing counted) when the hour's codes are used up."""
    recent = limits.recent(limits.codes_mailed)
    if len(recent) >= per_hour:
        return False
    await conn.execute(
        update(LIMITS)
        .where(LIMITS.c.customer_id == limits.customer_id)
        .values(codes_mailed=[*recent, limits.now])
    )
    return True


async def count_wrong_guess(conn: AsyncConnection, limits: Limits, per_hour: int) -> None:
    """Count one wrong guess; the one that reaches `per_hour` in an hour locks for an hour."""
    recent = [*limits.recent(limits.wrong_guesses), limits.now]
    values: dict[str, object] = {"wrong_guesses": recent}
    if len(recent) >= per_hour:
        values["locked_until"] = limits.now + HOUR
    await conn.execute(
        update(LIMITS).where(LIMITS.c.customer_id == limits.customer_id).values(**values)
    )
