"""Sign-in limits, kept in PostgreSQL (every worker and replica sees them).

Counted per (address, client IP) so that a stranger cannot lock the owner out: after 10
wrong codes in an hour that pair is refused for an hour, while the owner signing in from
elsewhere is not; and per address across all clients (the row whose client is `*`): at most
100 wrong codes an hour, past which the address is refused for the rest of the hour (a
security event: many clients are guessing). Codes mailed: at most 5 an hour per pair and 30
per address. Each row holds the times of its recent guesses and mailed codes (sliding
windows of an hour) and when its refusal ends. Both rows are locked for the transaction that
reads them, the pair first, so concurrent attempts are counted one by one.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings

log = logging.getLogger("jambo.security")

HOUR = dt.timedelta(hours=1)
EVERYONE = "*"  # the address-wide row
NOBODY = uuid.UUID(int=0)

_LOCK = text(
    "INSERT INTO sign_in_limits (customer_id, client) VALUES (:customer, :client), (:customer, '*')"
    " ON CONFLICT (customer_id, client) DO UPDATE SET locked_until = sign_in_limits.locked_until"
    " RETURNING client, wrong_guesses, codes_mailed, locked_until, now() AS now"
)
# The same round trip for an address nobody has (nothing is locked or written).
_LOCK_NOBODY = text(
    "SELECT client, wrong_guesses, codes_mailed, locked_until, now() AS now"
    " FROM sign_in_limits WHERE customer_id = :customer AND client IN (:client, '*')"
    " FOR UPDATE"
)
_TIMES = "AS timestamptz[])"
_WRITE = text(
    "UPDATE sign_in_limits SET"
    f" wrong_guesses = CASE WHEN client = '*' THEN CAST(:all_guesses {_TIMES}"
    f" ELSE CAST(:guesses {_TIMES} END,"
    f" codes_mailed = CASE WHEN client = '*' THEN CAST(:all_mailed {_TIMES}"
    f" ELSE CAST(:mailed {_TIMES} END,"
    " locked_until = CASE WHEN client = '*' THEN CAST(:all_until AS timestamptz)"
    " ELSE CAST(:until AS timestamptz) END"
    " WHERE customer_id = :customer AND client IN (:client, '*')"
)


@dataclass(slots=True)
class Window:
    """One row's recent history (the last hour) and refusal."""

    guesses: list[dt.datetime]
    mailed: list[dt.datetime]
    until: dt.datetime | None

    def refused(self, now: dt.datetime) -> bool:
        return self.until is not None and self.until > now


@dataclass(slots=True)
class Limits:
    """The (address, client) pair's and the whole address's rows, as read and locked."""

    customer_id: uuid.UUID
    client: str
    now: dt.datetime
    pair: Window
    address: Window

    @property
    def refused(self) -> bool:
        """Whether this client may not try a code for this address now."""
        return self.pair.refused(self.now) or self.address.refused(self.now)

    def tries_since(self, moment: dt.datetime) -> int:
        """This client's wrong guesses at this address since `moment`."""
        return sum(1 for t in self.pair.guesses if t >= moment)

    def may_mail(self, settings: Settings) -> bool:
        """Whether another code may be mailed (per pair and per address, an hour)."""
        return (
            len(self.pair.mailed) < settings.sign_in_max_codes_per_hour
            and len(self.address.mailed) < settings.sign_in_max_codes_per_address_per_hour
        )


def client_of(address: str | None) -> str:
    """The client IP as the limits key it (at most 45 characters: an IPv6 address)."""
    return (address or "unknown")[:45]


async def lock(conn: AsyncConnection, customer_id: uuid.UUID | None, client: str) -> Limits:
    """Both rows of the customer's address (created when missing), locked until the
    transaction ends; for no customer, the same round trip and empty windows."""
    params = {"customer": customer_id or NOBODY, "client": client}
    rows = (await conn.execute(_LOCK if customer_id else _LOCK_NOBODY, params)).all()
    now: dt.datetime = rows[0].now if rows else dt.datetime.now(dt.UTC)
    since = now - HOUR
    windows = {
        row.client: Window(
            [t for t in row.wrong_guesses if t > since],
            [t for t in row.codes_mailed if t > since],
            row.locked_until,
        )
        for row in rows
    }
    empty = Window([], [], None)
    return Limits(
        customer_id or NOBODY,
        client,
        now,
        windows.get(client, empty),
        windows.get(EVERYONE, Window([], [], None)),
    )


async def save(conn: AsyncConnection, limits: Limits) -> None:
    """Write both windows back (one statement, whatever changed: every outcome costs the
    same)."""
    await conn.execute(
        _WRITE,
        {
            "customer": limits.customer_id,
            "client": limits.client,
            "guesses": limits.pair.guesses,
            "mailed": limits.pair.mailed,
            "until": limits.pair.until,
            "all_guesses": limits.address.guesses,
            "all_mailed": limits.address.mailed,
            "all_until": limits.address.until,
        },
    )


def count_wrong_guess(limits: Limits, settings: Settings) -> None:
    """Count one wrong guess in both windows; refuse the pair after its tenth in an hour and
    the whole address for the rest of the hour past its hundredth."""
    now = limits.now
    limits.pair.guesses.append(now)
    limits.address.guesses.append(now)
    if len(limits.pair.guesses) >= settings.sign_in_max_wrong_guesses_per_hour:
        limits.pair.until = now + HOUR
    if len(limits.address.guesses) >= settings.sign_in_max_wrong_guesses_per_address_per_hour:
        limits.address.until = min(limits.address.guesses) + HOUR
        log.warning(
            "sign-in guesses at one address past its hourly ceiling: refused for the hour",
            extra={"event": "sign_in_ceiling", "customer_id": str(limits.customer_id)},
        )


def count_mailed(limits: Limits) -> None:
    """Count one mailed code in both windows."""
    limits.pair.mailed.append(limits.now)
    limits.address.mailed.append(limits.now)
