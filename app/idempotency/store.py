"""Every Idempotency-Key query: single statements on the raw autocommit pool (one round
trip each; the hot write path pays two of them, and only when a key is sent).

The claim, the answer and the release commit without waiting for the WAL flush
(`synchronous_commit` off for that statement alone, `set_config(…, true)`): a flush costs
more than the statement (about 5 ms against 1 ms, measured here). What that risks is small:
the work's own commit flushes the WAL up to and including an earlier claim, so a claim is
never lost while its work survives; only a stored answer can be lost, when PostgreSQL
crashes within a fraction of a second of it — the key then lapses like a dead worker's and
a retry runs again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import orjson

from app.db.database import Database

# Claim the key: a new row, or take over one whose time is up (an answer past its retention,
# or an in-flight claim whose worker died). In the same statement a few expired rows of
# others are purged, so the table holds about one day of keys without a sweeper.
CLAIM = """
    WITH purge AS (
        DELETE FROM idempotency_keys WHERE (caller, key) IN (
            SELECT caller, key FROM idempotency_keys
            WHERE expires_at < now() AND NOT (caller = $1 AND key = $2)
            ORDER BY expires_at LIMIT 20 FOR UPDATE SKIP LOCKED
        )
    )
    INSERT INTO idempotency_keys (caller, key, fingerprint, expires_at)
    SELECT $1, $2, $3, now() + make_interval(secs => $4)
    WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL
    ON CONFLICT (caller, key) DO UPDATE SET
        fingerprint = excluded.fingerprint, status = NULL, headers = NULL, body = NULL,
        created_at = now(), expires_at = excluded.expires_at
    WHERE idempotency_keys.expires_at < now()
    RETURNING created_at
"""
LOOKUP = """
    SELECT fingerprint, status, headers, body, expires_at > now() AS live
    FROM idempotency_keys WHERE caller = $1 AND key = $2
"""
SAVE = """
    UPDATE idempotency_keys
    SET status = $4, headers = $5::jsonb, body = $6,
        expires_at = created_at + make_interval(secs => $7)
    WHERE caller = $1 AND key = $2 AND created_at = $3 AND status IS NULL
        AND set_config('synchronous_commit', 'off', true) IS NOT NULL
"""
RELEASE = """
    DELETE FROM idempotency_keys
    WHERE caller = $1 AND key = $2 AND created_at = $3 AND status IS NULL
        AND set_config('synchronous_commit', 'off', true) IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """A key's row as found: its fingerprint, and the answer once there is one."""

    fingerprint: bytes
    status: int | None
    headers: dict[str, str]
    body: bytes
    live: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """This request's hold on a key (`created_at` tells it from a later claim of the key)."""

    caller: str
    key: str
    created_at: dt.datetime


class KeyStore:
    """Claims keys, finds what others stored, stores or releases answers."""

    def __init__(self, db: Database, retention_s: int, lock_s: int) -> None:
        self.db = db
        self.retention_s = retention_s
        self.lock_s = lock_s

    async def claim(self, caller: str, key: str, fingerprint: bytes) -> Claim | None:
        """Hold the key for this request, or None when someone holds or answered it."""
        row = await self.db.fetchrow(CLAIM, caller, key, fingerprint, float(self.lock_s))
        return Claim(caller, key, row["created_at"]) if row else None

    async def find(self, caller: str, key: str) -> Stored | None:
        """The key's row, if any."""
        row = await self.db.fetchrow(LOOKUP, caller, key)
        if row is None:
            return None
        headers = orjson.loads(row["headers"]) if row["headers"] else {}
        return Stored(row["fingerprint"], row["status"], headers, row["body"] or b"", row["live"])

    async def save(self, claim: Claim, status: int, headers: dict[str, str], body: bytes) -> None:
        """Keep the answer for replays, for the retention period from the first request."""
        await self.db.fetchrow(
            SAVE,
            claim.caller,
            claim.key,
            claim.created_at,
            status,
            orjson.dumps(headers).decode(),
            body,
            float(self.retention_s),
        )

    async def release(self, claim: Claim) -> None:
        """Give the key up: nothing was kept, a retry runs again."""
        await self.db.fetchrow(RELEASE, claim.caller, claim.key, claim.created_at)
