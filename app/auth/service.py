"""Issuing tokens: client credentials for staff, e-mailed one-time codes for customers."""

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth import limits
from app.auth.models import ApiClient, EmailCode
from app.auth.server_keys import CLIENT_SECRETS, EMAIL_CODES, ServerKeys
from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from app.customers import repository as customers
from app.db.base import table_of
from app.db.database import Database
from app.errors import DomainError, Unavailable
from app.ids import render_ulid
from app.mail import Mailer

log = logging.getLogger("jambo.auth")
CLIENTS = table_of(ApiClient)
CODES = table_of(EmailCode)
_PBKDF2_ROUNDS = 120_000
_KEYED = "hmac-sha256$"
# Hashes from before keyed hashing are PBKDF2 (~0.1 s of CPU): checked off the event loop, on
# a thread of their own so that a flood of wrong secrets cannot take every core.
_LEGACY_CHECKS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbkdf2")
MAIL_RETRY_PAUSE_SECONDS = 0.5


class GrantError(DomainError):
    """An RFC 6749 §5.2 error: `error` is its code (the contract picks the HTTP status)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.error = error
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
    """Constant-time check of a secret against its stored PBKDF2 hash (the old format)."""
    salt_hex, _, _digest = stored.partition("$")
    try:
        expected = hash_secret(secret, bytes.fromhex(salt_hex))
    except ValueError:
        return False
    return hmac.compare_digest(expected, stored)


def keyed_hash(key: bytes, secret: str) -> str:
    """A client secret's stored form: HMAC-SHA256 under the server's key (secrets are 256-bit
    random values, so a slow hash adds nothing but load)."""
    digest = hmac.new(key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return _KEYED + digest.hexdigest()


async def check_secret(key: bytes, secret: str, stored: str) -> bool:
    """Whether `secret` matches `stored` (keyed hash, or PBKDF2 in a worker thread)."""
    if stored.startswith(_KEYED):
        return hmac.compare_digest(keyed_hash(key, secret), stored)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_LEGACY_CHECKS, verify_secret, secret, stored)


class AuthService:
    """Registers API clients and exchanges credentials for access tokens."""

    def __init__(self, db: Database, settings: Settings, mailer: Mailer) -> None:
        self.db = db
        self.settings = settings
        self.mailer = mailer
        self.keys = ServerKeys(db)

    async def _code_hash(self, code: str) -> bytes:
        key = await self.keys.get(EMAIL_CODES)
        return hmac.new(key, code.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

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
        key = await self.keys.get(CLIENT_SECRETS)
        async with self.db.transaction() as conn:
            await conn.execute(
                insert(CLIENTS).values(
                    client_id=client_id,
                    secret_hash=keyed_hash(key, secret),
                    name=name,
                    scopes=" ".join(scopes),
                )
            )
        return client_id, secret

    async def revoke_client(self, client_id: str) -> bool:
        """Mark a client revoked; False when there is no such client."""
        if not _storable(client_id, 64):
            return False
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(CLIENTS).where(CLIENTS.c.client_id == client_id).values(revoked=True)
            )
        return bool(result.rowcount)

    async def list_clients(self) -> list[dict[str, object]]:
        """Every registered client, oldest first (no secrets, not even their hashes)."""
        async with self.db.autocommit() as conn:
            rows = await conn.execute(
                select(
                    CLIENTS.c.client_id,
                    CLIENTS.c.name,
                    CLIENTS.c.scopes,
                    CLIENTS.c.revoked,
                    CLIENTS.c.created_at,
                ).order_by(CLIENTS.c.id)
            )
            return [
                {**row._asdict(), "created": row.created_at.isoformat(timespec="seconds")}
                for row in rows
            ]

    async def client_credentials(
        self, client_id: str, secret: str, requested: str | None
    ) -> dict[str, object]:
        """A staff token for a registered, unrevoked client (scopes narrowed on request)."""
        if not _storable(client_id, 64):
            raise GrantError("invalid_client")
        key = await self.keys.get(CLIENT_SECRETS)
        async with self.db.autocommit() as conn:
            row = (
                await conn.execute(select(CLIENTS).where(CLIENTS.c.client_id == client_id))
            ).first()
        # Unknown, revoked and known ids cost the same: the secret is always hashed and
        # compared (against a stand-in for an unknown id), then the verdict is given.
        stored = row.secret_hash if row is not None else keyed_hash(key, "no such client")
        matches = await check_secret(key, secret, stored)
        if row is None or row.revoked or not matches:
            raise GrantError("invalid_client")
        if not row.secret_hash.startswith(_KEYED):  # an old PBKDF2 hash: now the keyed one
            async with self.db.autocommit() as conn:
                await conn.execute(
                    update(CLIENTS)
                    .where(CLIENTS.c.id == row.id, CLIENTS.c.secret_hash == row.secret_hash)
                    .values(secret_hash=keyed_hash(key, secret))
                )
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
        code_hash = await self._code_hash(code)
        ttl = dt.timedelta(minutes=self.settings.email_code_ttl_minutes)
        async with self.db.transaction() as conn:
            record = await customers.find_by_email(conn, email)
            if record is None:
                return None
            held = await limits.lock(conn, record.id)
            if not await limits.take_mail_turn(
                conn, held, self.settings.sign_in_max_codes_per_hour
            ):
                return None  # this hour's codes are used up: the live code stays as it is
            await self._supersede(conn, record.id)
            await conn.execute(
                insert(CODES).values(
                    customer_id=record.id,
                    code_hash=code_hash,
                    expires_at=dt.datetime.now(dt.UTC) + ttl,
                )
            )
        return record.email or email, code

    async def mail_email_code(self, to: str, code: str) -> None:
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

    async def send_email_code(self, email: str) -> None:
        """Issue and mail a code if the address is a customer's (and its hourly quota allows);
        nothing otherwise. Runs after the answer has gone out: failures are only logged."""
        try:
            issued = await self.issue_email_code(email)
        except Unavailable:
            log.warning("sign-in code not issued: the database is unavailable")
            return
        except Exception:  # noqa: BLE001 - after the reply nobody else would see it
            log.exception("sign-in code not issued")
            return
        if issued is not None:
            await self.mail_email_code(*issued)

    async def _supersede(self, conn: AsyncConnection, customer_id: object) -> None:
        await conn.execute(
            update(CODES)
            .where(CODES.c.customer_id == customer_id, CODES.c.used_at.is_(None))
            .values(used_at=dt.datetime.now(dt.UTC))
        )

    async def _as_if_wrong_guess(self, conn: AsyncConnection, now: dt.datetime) -> None:
        """The round trips of a wrong guess at a known address, touching nothing: an unknown
        address must not answer sooner (that would tell who is a customer)."""
        nobody = uuid.UUID(int=0)
        await conn.execute(
            select(limits.LIMITS.c.customer_id)
            .where(limits.LIMITS.c.customer_id == nobody)
            .with_for_update()
        )
        await conn.execute(
            select(CODES)
            .where(
                CODES.c.customer_id == nobody, CODES.c.used_at.is_(None), CODES.c.expires_at > now
            )
            .order_by(CODES.c.id.desc())
            .limit(1)
            .with_for_update()
        )
        await conn.execute(
            update(CODES).where(CODES.c.id == 0).values(attempts=CODES.c.attempts + 1)
        )
        await conn.execute(
            update(limits.LIMITS)
            .where(limits.LIMITS.c.customer_id == nobody)
            .values(locked_until=now)
        )

    async def redeem_email_code(self, email: str, code: str) -> dict[str, object]:
        """A customer token for a live, matching code; wrong tries count towards a lockout."""
        email = email.strip()
        if not _storable(email, 254):
            raise GrantError("invalid_grant")
        now = dt.datetime.now(dt.UTC)
        code_hash = await self._code_hash(code.strip())
        async with self.db.transaction() as conn:
            # A wrong guess would otherwise wait for its commit to reach the disk, which an
            # unknown address (nothing written) never does: a crash loses at most a fraction
            # of a second of counted guesses, far less than the timing would give away.
            await conn.execute(text("SET LOCAL synchronous_commit = off"))
            record = await customers.find_by_email(conn, email)
            if record is None:
                await self._as_if_wrong_guess(conn, now)
                raise GrantError("invalid_grant")
            # Serialises this address's attempts; a locked address is refused like a wrong code.
            held = await limits.lock(conn, record.id)
            if held.locked:
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
            if not hmac.compare_digest(row.code_hash, code_hash):
                await conn.execute(
                    update(CODES).where(CODES.c.id == row.id).values(attempts=CODES.c.attempts + 1)
                )
                await limits.count_wrong_guess(
                    conn, held, self.settings.sign_in_max_wrong_guesses_per_hour
                )
                wrong = GrantError("invalid_grant")
            else:
                await conn.execute(update(CODES).where(CODES.c.id == row.id).values(used_at=now))
                return self._token(render_ulid(record.id), "customer", [])
        raise wrong
