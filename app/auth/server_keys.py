"""Random keys the server makes for itself and keeps in PostgreSQL (shared by every replica).

E-mail-code and client-secret hashes are keyed with these, never with JWT_SECRET (which is a
public default in RS256/ES256 mode, and a configuration value besides).
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.auth.models import ServerKey
from app.db.base import table_of
from app.db.database import Database

KEYS = table_of(ServerKey)
EMAIL_CODES = "email-code"
CLIENT_SECRETS = "client-secret"


class ServerKeys:
    """Reads each named key once per process; the first process to ask makes it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[str, bytes] = {}

    async def get(self, name: str) -> bytes:
        """The key called `name` (made and stored on first use)."""
        key = self._known.get(name)
        if key is None:
            async with self.db.transaction() as conn:
                # Two processes racing: the second insert waits for the first, then yields.
                await conn.execute(
                    insert(KEYS)
                    .values(name=name, key=secrets.token_bytes(32))
                    .on_conflict_do_nothing(index_elements=[KEYS.c.name])
                )
                stored = (
                    await conn.execute(select(KEYS.c.key).where(KEYS.c.name == name))
                ).scalar_one()
            key = self._known[name] = bytes(stored)
        return key
