"""Every Idempotency-Key query. They run in the request's own unit of work, on the driver's
connection (SQLAlchemy's execution layer was a third of each statement's client cost): the
look-up, the work it guards and the answer it keeps are one transaction and one commit, so
an answer is exactly as durable as the work (a 201 always has a replayable answer, across a
crash or a failover), and a request that failed leaves nothing behind.

"Still running" is a transaction-scoped advisory lock on the (caller, key) pair, not a row:
it ends with its transaction, so a worker that dies mid-request holds no key for a minute.
The primary key is what makes a second run impossible: two requests that both missed the
other's answer cannot both insert theirs.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

# The lock is taken in the statement that looks the key up; the look-up reads the snapshot
# taken before the lock was granted, so an answer committed in between is missed: the save
# then finds the key taken (`SAVE` returns no row) and the guard runs the request again.
FIND = """
    SELECT pg_try_advisory_xact_lock($3) AS free,
        k.fingerprint, k.status, k.headers::text AS headers, k.body
    FROM (VALUES (1)) AS one (x)
    LEFT JOIN idempotency_keys k ON k.caller = $1 AND k.key = $2 AND k.expires_at > now()
"""
COUNT_LIVE = """
    SELECT count(*) FROM (
        SELECT 1 FROM idempotency_keys WHERE caller = $1 AND expires_at > now() LIMIT $2
    ) AS live
"""
SAVE = """
    INSERT INTO idempotency_keys
        (caller, key, fingerprint, status, headers, body, customer_id, expires_at)
    VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, now() + make_interval(secs => $8))
    ON CONFLICT (caller, key) DO UPDATE SET
        fingerprint = excluded.fingerprint, status = excluded.status,
        headers = excluded.headers, body = excluded.body, customer_id = excluded.customer_id,
        created_at = now(), expires_at = excluded.expires_at
    WHERE idempotency_keys.expires_at <= now()
    RETURNING 1
"""
# A caller's live keys are counted at most this often by each worker (a count is an index
# scan over its keys); in between, the worker adds the keys it stored itself. Near the cap
# every request counts, so the cap holds across workers too.
RECOUNT_SECONDS = 60.0
NEAR = 0.9
CALLERS_REMEMBERED = 4096


class CapReached(Exception):
    """The caller holds as many live keys as it may."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A live key's first answer."""

    fingerprint: bytes
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Found:
    """What the look-up saw: whether this request holds the key now, and any answer."""

    free: bool
    stored: Stored | None


def caller_id(actor: str) -> bytes:
    """The caller's key-store id: SHA-256 of the whole identity (role and `sub`, never cut)."""
    return hashlib.sha256(actor.encode("utf-8", "surrogatepass")).digest()


def lock_id(caller: bytes, key: str) -> int:
    """The advisory lock of one (caller, key): 64 bits of their hash."""
    digest = hashlib.sha256(caller + key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class KeyStore:
    """Looks keys up, keeps answers, and holds each caller to its cap of live keys."""

    def __init__(self, retention_s: int, max_live: int) -> None:
        self.retention_s = retention_s
        self.max_live = max_live
        self._live: OrderedDict[bytes, tuple[int, float]] = OrderedDict()

    async def find(self, conn: asyncpg.Connection, caller: bytes, key: str) -> Found:
        """Take the key's lock (if free) and read its live answer, in one statement."""
        row = await conn.fetchrow(FIND, caller, key, lock_id(caller, key))
        assert row is not None
        if row["status"] is None:
            return Found(row["free"], None)
        headers = orjson.loads(row["headers"])
        return Found(row["free"], Stored(row["fingerprint"], row["status"], headers, row["body"]))

    async def check_cap(self, conn: asyncpg.Connection, caller: bytes) -> None:
        """CapReached when the caller already holds `max_live` live keys."""
        now = time.monotonic()
        known = self._live.get(caller)
        if known is None or now - known[1] > RECOUNT_SECONDS or known[0] >= self.max_live * NEAR:
            count = await conn.fetchval(COUNT_LIVE, caller, self.max_live)
            known = (count, now)
            self._remember(caller, known)
        if known[0] >= self.max_live:
            raise CapReached

    async def save(
        self,
        conn: asyncpg.Connection,
        caller: bytes,
        key: str,
        fingerprint: bytes,
        answer: tuple[int, dict[str, str], bytes],
        customer_id: uuid.UUID | None,
    ) -> bool:
        """Keep the answer in the unit of work; False when the key turned out to be taken."""
        status, headers, body = answer
        saved = await conn.fetchrow(
            SAVE,
            caller,
            key,
            fingerprint,
            status,
            orjson.dumps(headers).decode(),
            body,
            customer_id,
            float(self.retention_s),
        )
        if saved is None:
            return False
        known = self._live.get(caller)
        if known is not None:
            self._remember(caller, (known[0] + 1, known[1]))
        return True

    def _remember(self, caller: bytes, count: tuple[int, float]) -> None:
        self._live[caller] = count
        self._live.move_to_end(caller)
        while len(self._live) > CALLERS_REMEMBERED:
            self._live.popitem(last=False)


async def answers_about(conn: AsyncConnection, customer_id: uuid.UUID) -> list[dict[str, object]]:
    """When each live stored answer holding this customer's data was kept, and its status."""
    rows = await conn.exec_driver_sql(
        "SELECT created_at, expires_at, status FROM idempotency_keys"
        " WHERE customer_id = $1 AND expires_at > now() ORDER BY created_at",
        (customer_id,),
    )
    return [dict(row._mapping) for row in rows]
