"""Retention: what the service keeps only for a while is purged a batch at a time.

Every worker runs the loop; a transaction-scoped advisory lock lets one of them (across
replicas too, and through a transaction pooler) purge at a time. Each batch is its own short
transaction, found through an index on the tables that grow with traffic, so a purge never
holds locks long or scans a big table:
expired Idempotency-Key answers (after IDEMPOTENCY_RETENTION_HOURS), audit lines older than
AUDIT_RETENTION_DAYS (they hold no personal values, so a customer's erasure leaves them; the
purge walks them oldest first by primary key and stops at the first that is young enough),
and sign-in codes and deletion tokens a day past their expiry.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from sqlalchemy import text

from app.db.database import Database
from app.errors import Unavailable

log = logging.getLogger("jambo.housekeeping")

LOCK = 0x6A616D626F01  # "jambo" + 1: the housekeeping advisory lock
BATCH = 5000
# Batches per pass at most: a backlog (a long outage, a lowered retention) drains over
# several passes instead of one long burst of deletes.
MAX_BATCHES = 20


@dataclass(frozen=True, slots=True)
class Purge:
    """One kind of row past its time: a DELETE of at most :batch rows."""

    name: str
    sql: str


def purges(audit_days: int) -> tuple[Purge, ...]:
    """The purges, with the retention settings in them (integers only, never client input)."""
    return (
        Purge(
            "idempotency_keys",
            "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys"
            " WHERE expires_at < now() ORDER BY expires_at LIMIT :batch)",
        ),
        Purge(
            "audit_events",
            "DELETE FROM audit_events WHERE id IN (SELECT id FROM (SELECT id, at"
            " FROM audit_events ORDER BY id LIMIT :batch) AS oldest"
            f" WHERE at < now() - make_interval(days => {int(audit_days)}))",
        ),
        Purge(
            "email_codes",
            "DELETE FROM email_codes WHERE id IN (SELECT id FROM email_codes"
            " WHERE expires_at < now() - interval '1 day' LIMIT :batch)",
        ),
        Purge(
            "deletion_tokens",
            "DELETE FROM deletion_tokens WHERE id IN (SELECT id FROM deletion_tokens"
            " WHERE expires_at < now() - interval '1 day' LIMIT :batch)",
        ),
    )


class Housekeeper:
    """Runs the purges every `interval` seconds (jittered) while the process lives."""

    def __init__(self, db: Database, audit_days: int, interval: float) -> None:
        self.db = db
        self.purges = purges(audit_days)
        self.interval = interval

    async def run(self) -> None:
        """Purge forever (until cancelled); a database outage only delays the next pass."""
        await asyncio.sleep(random.uniform(0, self.interval))  # workers do not pass in step
        while True:
            try:
                await self.pass_once()
            except Unavailable:
                log.info("housekeeping skipped: the database is unavailable")
            except Exception:  # noqa: BLE001 - a bug here must not end the loop
                log.exception("housekeeping pass failed")
            await asyncio.sleep(self.interval * random.uniform(0.8, 1.2))

    async def pass_once(self) -> dict[str, int]:
        """One pass: each purge until a batch comes back short; rows deleted by kind."""
        deleted: dict[str, int] = {}
        for purge in self.purges:
            for _ in range(MAX_BATCHES):
                count = await self._batch(purge)
                if count is None:
                    return deleted  # another worker is purging
                deleted[purge.name] = deleted.get(purge.name, 0) + count
                if count < BATCH:
                    break
        if any(deleted.values()):
            log.info("housekeeping purged expired rows", extra={"deleted": deleted})
        return deleted

    async def _batch(self, purge: Purge) -> int | None:
        async with self.db.transaction() as conn:
            lock = text("SELECT pg_try_advisory_xact_lock(:lock)")
            held = await conn.execute(lock, {"lock": LOCK})
            if not held.scalar():
                return None
            result = await conn.execute(text(purge.sql), {"batch": BATCH})
            return int(result.rowcount or 0)
