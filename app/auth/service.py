"""Issuing tokens: client credentials for staff, e-mailed one-time codes for customers."""

import datetime as dt
import hashlib
import hmac
import logging
import secrets

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth.models import ApiClient, EmailCode
from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from app.customers import repository as customers
from app.customers.ids import render_ulid
from app.db.base import table_of
from app.db.database import Database
from app.errors import Unavailable
from app.mail import Mailer

log = logging.getLogger("jambo.auth")
CLIENTS = table_of(ApiClient)
CODES = table_of(EmailCode)
_PBKDF2_ROUNDS = 120_000


class GrantError(Exception):
    """An RFC 6749 error: `error` is its code, `status` the HTTP status."""

    def __init__(self, error: str, status: int = 400, description: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.description = description


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """A salted PBKDF2 hash, stored as `salt$digest` in hex."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, _PBKDF2_ROUNDS)
    return f"{salt.hex()}${digest.hex()}"


def _storable(text: str, max_length: int) -> bool:
    """Whether a credential can be looked up at all (PostgreSQL refuses NUL in text)."""
    return "\x00" not in text and len(text) <= max_length


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of a secret against its stored hash."""
    salt_hex, _, _digest = stored.partition("$")
    try:
        expected = hash_secret(secret, bytes.fromhex(salt_hex))
    except ValueError:
        return False
    return hmac.compare_digest(expected, stored)


class AuthService:
    """Registers API clients and exchanges credentials for access tokens."""

    def __init__(self, db: Database, settings: Settings, mailer: Mailer) -> None:
        self.db = db
        self.settings = settings
        self.mailer = mailer

    def _code_hash(self, code: str) -> bytes:
        key = self.settings.jwt_secret.get_secret_value().encode()
        return hmac.new(key, code.encode(), hashlib.sha256).digest()

    def _token(self, sub: str, role: str, scopes: list[str]) -> dict[str, object]:
        ttl = self.settings.access_token_ttl_seconds
        return {
            "access_token": mint_token(self.settings, sub, role, scopes, ttl),
            "token_type": "bearer",
            "expires_in": ttl,
            "scope": " ".join(scopes),
        }

    async def create_client(self, name: str, scopes: list[str]) -> tuple[str, str]:
        """Register a client; returns (client_id, secret): the secret is shown only once."""
        unknown = set(scopes) - set(STAFF_SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
        client_id = secrets.token_hex(12)
        secret = secrets.token_urlsafe(32)
        async with self.db.transaction() as conn:
            await conn.execute(
                insert(CLIENTS).values(
                    client_id=client_id,
                    secret_hash=hash_secret(secret),
                    name=name,
                    scopes=" ".join(scopes),
                )
            )
        return client_id, secret

    async def client_credentials(
        self, client_id: str, secret: str, requested: str | None
    ) -> dict[str, object]:
        """A staff token for a registered, unrevoked client (scopes narrowed on request)."""
        if not _storable(client_id, 64):
            raise GrantError("invalid_client", 401)
        async with self.db.autocommit() as conn:
            row = (
                await conn.execute(select(CLIENTS).where(CLIENTS.c.client_id == client_id))
            ).first()
        if row is None or row.revoked or not verify_secret(secret, row.secret_hash):
            raise GrantError("invalid_client", 401)
        granted = row.scopes.split()
        if requested:
            wanted = requested.split()
            if set(wanted) - set(granted):
                raise GrantError("invalid_scope")
            granted = wanted
        return self._token(client_id, "staff", granted)

    async def issue_email_code(self, email: str) -> tuple[str, str] | None:
        """Store a fresh one-time code for the address's customer: (address, code), else None."""
        email = email.strip()
        if not _storable(email, 254):
            return None
        code = f"{secrets.randbelow(1_000_000):06d}"
        ttl = dt.timedelta(minutes=self.settings.email_code_ttl_minutes)
        async with self.db.transaction() as conn:
            record = await customers.find_by_email(conn, email)
            if record is None:
                return None
            await self._supersede(conn, record.id)
            await conn.execute(
                insert(CODES).values(
                    customer_id=record.id,
                    code_hash=self._code_hash(code),
                    expires_at=dt.datetime.now(dt.UTC) + ttl,
                )
            )
        return record.email or email, code

    async def mail_email_code(self, to: str, code: str) -> None:
        """Mail an issued code; a mail failure is logged, not raised (the caller has answered)."""
        try:
            await self.mailer.send(
                to,
                "Your Jambo sign-in code",
                f"Your sign-in code is {code}.\n\nIt expires in "
                f"{self.settings.email_code_ttl_minutes} minutes and works once.\n",
            )
        except Unavailable:
            log.warning("sign-in code not delivered: the mail server is unavailable")

    async def send_email_code(self, email: str) -> None:
        """Issue and mail a code in one go if the address is a customer's; nothing otherwise."""
        issued = await self.issue_email_code(email)
        if issued is not None:
            await self.mail_email_code(*issued)

    async def _supersede(self, conn: AsyncConnection, customer_id: object) -> None:
        await conn.execute(
            update(CODES)
            .where(CODES.c.customer_id == customer_id, CODES.c.used_at.is_(None))
            .values(used_at=dt.datetime.now(dt.UTC))
        )

    async def redeem_email_code(self, email: str, code: str) -> dict[str, object]:
        """A customer token for a live, matching code; wrong tries count towards a lockout."""
        email = email.strip()
        if not _storable(email, 254):
            raise GrantError("invalid_grant")
        now = dt.datetime.now(dt.UTC)
        async with self.db.transaction() as conn:
            record = await customers.find_by_email(conn, email)
            if record is None:
                raise GrantError("invalid_grant")
            row = (
                await conn.execute(
                    select(CODES)
                    .where(
                        CODES.c.customer_id == record.id,
                        CODES.c.used_at.is_(None),
                        CODES.c.expires_at > now,
                    )
                    .order_by(CODES.c.id.desc())
                    .limit(1)
                    .with_for_update()
                )
            ).first()
            if row is None or row.attempts >= self.settings.email_code_max_attempts:
                raise GrantError("invalid_grant")
            if not hmac.compare_digest(row.code_hash, self._code_hash(code.strip())):
                await conn.execute(
                    update(CODES).where(CODES.c.id == row.id).values(attempts=CODES.c.attempts + 1)
                )
                wrong = GrantError("invalid_grant")
            else:
                await conn.execute(update(CODES).where(CODES.c.id == row.id).values(used_at=now))
                return self._token(render_ulid(record.id), "customer", [])
        raise wrong
