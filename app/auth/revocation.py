"""Revoked API clients: their tokens are refused on every worker within seconds."""

from __future__ import annotations

import time

from app.db.database import Database
from app.errors import Unauthenticated

_STATE = "SELECT revoked FROM api_clients WHERE client_id = $1"


class ClientStates:
    """Whether a staff token's `sub` names a revoked client, read from PostgreSQL behind a
    short cache per sub (the database is the only shared state: every worker and replica
    sees a revocation once its cached answer ages out)."""

    def __init__(self, db: Database, ttl_seconds: float, max_entries: int = 4096) -> None:
        self.db = db
        self.ttl = ttl_seconds
        self._max_entries = max_entries
        self._cache: dict[str, tuple[bool, float]] = {}

    async def refuse_revoked(self, sub: str) -> None:
        """Raise Unauthenticated(invalid_token) when `sub` is a revoked client of ours.

        A `sub` that is no client of ours (a gateway-issued staff token) is let through.
        """
        now = time.monotonic()
        hit = self._cache.get(sub)
        if hit is None or hit[1] <= now:
            row = await self.db.fetchrow(_STATE, sub)
            # The age counts from before the read: the answer is at most `ttl` old.
            hit = (bool(row is not None and row["revoked"]), now + self.ttl)
            if len(self._cache) >= self._max_entries:
                self._cache.clear()  # bounded: tokens are signed, so subs are few in practice
            self._cache[sub] = hit
        if hit[0]:
            raise Unauthenticated("Invalid token.", invalid_token=True)
