"""Customer sign-in by e-mailed one-time code.

A code is 6 digits, stored only as an HMAC under a server key, single use, live for
EMAIL_CODE_TTL_MINUTES. Asking for a new code leaves the address's last 3 codes valid (a
stranger's request must not void the code the owner is about to type), and a successful
sign-in uses them all up. A client that made EMAIL_CODE_MAX_ATTEMPTS (5) wrong guesses at an
address since a code was mailed cannot use that code; the limits per (address, client) and
per address are in app/auth/limits.py.

Every outcome of a guess costs the same: an unknown address, a refused client, a wrong code
and a right one run the same statements (the address's rows are read, locked and written
back even when nothing changed), so no answer time tells them apart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, insert, text

from app.auth import limits
from app.auth.models import EmailCode
from app.auth.server_keys import EMAIL_CODES, ServerKeys
from app.auth.service import GrantError, issue_token
from app.config import Settings
from app.customers import repository as customers
from app.db.base import table_of
from app.db.database import Database
from app.errors import Unavailable
from app.ids import render_ulid
from app.mail import Mailer

log = logging.getLogger("jambo.auth")
CODES = table_of(EmailCode)
KEPT_CODES = 3
MAIL_RETRY_PAUSE_SECONDS = 0.5

_LIVE = text(
    "SELECT id, code_hash, created_at FROM email_codes"
    " WHERE customer_id = :customer AND used_at IS NULL AND expires_at > now()"
    " ORDER BY id DESC LIMIT :kept FOR UPDATE"
)
_USE_ALL = text(
    "UPDATE email_codes SET used_at = now() WHERE customer_id = :customer AND used_at IS NULL"
)
# Before a new code is stored: all but the newest KEPT_CODES - 1 live codes are retired.
_RETIRE_OLDER = text(
    "UPDATE email_codes SET used_at = now() WHERE customer_id = :customer AND used_at IS NULL"
    " AND id NOT IN (SELECT id FROM email_codes WHERE customer_id = :customer"
    " AND used_at IS NULL AND expires_at > now() ORDER BY id DESC LIMIT :keep)"
)


def _storable(value: str, max_length: int) -> bool:
    """Whether a value can be looked up at all (PostgreSQL refuses NUL in text)."""
    return "\x00" not in value and len(value) <= max_length


class SignInCodes:
    """Mails one-time codes and exchanges them for customer tokens."""

    def __init__(self, db: Database, settings: Settings, mailer: Mailer, keys: ServerKeys) -> None:
        self.db = db
        self.settings = settings
        self.mailer = mailer
        self.keys = keys

    async def _hash(self, code: str) -> bytes:
        key = await self.keys.get(EMAIL_CODES)
        return hmac.new(key, code.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    async def issue(self, email: str, client: str) -> tuple[str, str] | None:
        """Store a fresh code for the address's customer when its hourly quotas allow:
        (address, code), else None."""
        if not _storable(email, 254):
            return None
        code = f"{secrets.randbelow(1_000_000):06d}"
        code_hash = await self._hash(code)
        ttl = dt.timedelta(minutes=self.settings.email_code_ttl_minutes)
        async with self.db.transaction() as conn:
            record = await customers.find_by_address(conn, email)
            if record is None or record.email is None:
                return None
            held = await limits.lock(conn, record.id, limits.client_of(client))
            if not held.may_mail(self.settings):
                return None  # this hour's codes are used up: the live ones stay as they are
            limits.count_mailed(held)
            await limits.save(conn, held)
            await conn.execute(_RETIRE_OLDER, {"customer": record.id, "keep": KEPT_CODES - 1})
            await conn.execute(
                insert(CODES).values(
                    customer_id=record.id, code_hash=code_hash, expires_at=held.now + ttl
                )
            )
        return record.email, code

    async def mail(self, to: str, code: str) -> None:
        """Mail an issued code, trying twice; a failure is logged, not raised (the caller has
        answered). No database connection is held meanwhile."""
        for attempt in (1, 2):
            try:
                await self.mailer.send(
                    to,
                    "Your Jambo sign-in code",
                    f"Your sign-in code is {code}.\n\nIt expires in "
                    f"{self.settings.email_code_ttl_minutes} minutes and works once.\n",
                )
                return
            except Unavailable:
                if attempt == 1:
                    await asyncio.sleep(MAIL_RETRY_PAUSE_SECONDS)
        log.warning("sign-in code not delivered: the mail server is unavailable")

    async def send(self, email: str, client: str) -> None:
        """Issue and mail a code if the address is a customer's (and its quotas allow);
        nothing otherwise. Runs after the answer has gone out: failures are only logged."""
        try:
            issued = await self.issue(email, client)
        except Unavailable:
            log.warning("sign-in code not issued: the database is unavailable")
            return
        except Exception:  # noqa: BLE001 - after the reply nobody else would see it
            log.exception("sign-in code not issued")
            return
        if issued is not None:
            await self.mail(*issued)

    async def redeem(self, email: str, code: str, client: str) -> dict[str, object]:
        """A customer token for a live, matching code (GrantError invalid_grant otherwise)."""
        if not _storable(email, 254):
            raise GrantError("invalid_grant")
        code_hash = await self._hash(code.strip())
        async with self.db.transaction() as conn:
            # A wrong guess would otherwise wait for its commit to reach the disk, which an
            # unknown address (nothing written) never does: a crash loses at most a fraction
            # of a second of counted guesses, far less than the timing would give away.
            await conn.execute(text("SET LOCAL synchronous_commit = off"))
            record = await customers.find_by_address(conn, email)
            customer_id = record.id if record is not None else None
            held = await limits.lock(conn, customer_id, limits.client_of(client))
            live = (
                await conn.execute(
                    _LIVE, {"customer": customer_id or limits.NOBODY, "kept": KEPT_CODES}
                )
            ).all()
            matched = self._matches(held, live, code_hash, self.settings.email_code_max_attempts)
            if matched and customer_id is not None:
                await conn.execute(_USE_ALL, {"customer": customer_id})
            else:
                if not held.refused and customer_id is not None:
                    limits.count_wrong_guess(held, self.settings)
                await limits.save(conn, held)  # unchanged when refused: the same round trip
        if not matched or customer_id is None:
            raise GrantError("invalid_grant")
        return issue_token(self.settings, render_ulid(customer_id), "customer", [])

    @staticmethod
    def _matches(
        held: limits.Limits, live: Sequence[Row[Any]], code_hash: bytes, tries: int
    ) -> bool:
        """Whether the guess is one of the live codes this client may still use (every code
        is compared, whatever the verdict, so the time says nothing)."""
        matched = False
        for row in live:
            usable = held.tries_since(row.created_at) < tries
            if hmac.compare_digest(bytes(row.code_hash), code_hash) and usable:
                matched = True
        return matched and not held.refused
