"""The data-protection deletion flow: request a link by mail, confirm it once."""

import asyncio
import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.customers import repository as customers
from app.customers.service import erase
from app.db.base import table_of
from app.db.database import Database
from app.errors import Invalid, NotFound
from app.mail import Mailer
from app.privacy.models import DeletionToken

T = table_of(DeletionToken)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _supersede(conn: AsyncConnection, customer_id: uuid.UUID) -> None:
    await conn.execute(delete(T).where(T.c.customer_id == customer_id, T.c.used_at.is_(None)))


class DeletionService:
    """Issues and redeems single-use deletion tokens."""

    def __init__(self, db: Database, settings: Settings, mailer: Mailer) -> None:
        self.db = db
        self.settings = settings
        self.mailer = mailer

    async def request(self, customer_id: uuid.UUID, origin: str) -> None:
        """Mail the customer a link; the token is live only if the mail went out.

        No database connection is held while the mail server is talked to: the token is
        stored in one short transaction, the mail sent, and on failure the token deleted in
        another (a slow or silent mail server costs only these requests, never the pool).
        """
        origin = origin.rstrip("/")
        if origin not in {o.rstrip("/") for o in self.settings.allowed_origins}:
            raise Invalid({"origin": ["Origin is not allowed."]})
        token = secrets.token_urlsafe(32)
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(
            hours=self.settings.deletion_token_ttl_hours
        )
        async with self.db.transaction() as conn:
            record = await customers.get(conn, customer_id)
            if record is None:
                raise NotFound("Customer Not Found or is Invalid")
            if not record.email:
                raise Invalid({"email": ["The customer has no email address to send the link to."]})
            await _supersede(conn, customer_id)
            await conn.execute(
                T.insert().values(
                    token_hash=_hash(token), customer_id=customer_id, expires_at=expires
                )
            )
        ttl_hours = self.settings.deletion_token_ttl_hours
        link = f"{origin}/api/customer/{token}/delete/confirm"
        try:
            await self.mailer.send(
                record.email,
                "Confirm the deletion of your data",
                f"Hello {record.first_name},\n\n"
                "We received a request to delete your account and all your personal data.\n"
                f"To confirm, open this link within {ttl_hours} hours:\n\n"
                f"{link}\n\n"
                "If you did not ask for this, ignore this message; nothing will be deleted.\n",
            )
        except BaseException:
            # Not sent (or the request was abandoned): leave no live token behind.
            await asyncio.shield(self._withdraw(token))
            raise

    async def _withdraw(self, token: str) -> None:
        """Delete a token whose mail did not go out."""
        async with self.db.autocommit() as conn:
            await conn.execute(delete(T).where(T.c.token_hash == _hash(token)))

    async def is_live(self, token: str) -> bool:
        """Whether the token would be accepted (for the browser confirm page)."""
        async with self.db.autocommit() as conn:
            row = (
                await conn.execute(
                    select(T.c.id).where(
                        T.c.token_hash == _hash(token),
                        T.c.used_at.is_(None),
                        T.c.expires_at > dt.datetime.now(dt.UTC),
                    )
                )
            ).first()
        return row is not None

    async def confirm(self, token: str) -> None:
        """Redeem the token and delete the customer with all their data, in one transaction."""
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    update(T)
                    .where(
                        T.c.token_hash == _hash(token),
                        T.c.used_at.is_(None),
                        T.c.expires_at > dt.datetime.now(dt.UTC),
                    )
                    .values(used_at=dt.datetime.now(dt.UTC))
                    .returning(T.c.customer_id)
                )
            ).first()
            if row is None:
                raise NotFound("No Token matches the given query.")
            await erase(conn, row.customer_id, "self:deletion-link")
