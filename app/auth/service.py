"""Staff API clients and the client-credentials grant; the token answer every grant gives."""

import asyncio
import hashlib
import hmac
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import insert, select, update

from app.auth.models import ApiClient
from app.auth.server_keys import CLIENT_SECRETS, ServerKeys
from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from app.db.base import table_of
from app.db.database import Database
from app.errors import DomainError

log = logging.getLogger("jambo.auth")
CLIENTS = table_of(ApiClient)
_PBKDF2_ROUNDS = 120_000
_KEYED = "hmac-sha256$"
# Hashes from before keyed hashing are PBKDF2 (~0.1 s of CPU): checked off the event loop, on
# a thread of their own so that a flood of wrong secrets cannot take every core.
_LEGACY_CHECKS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbkdf2")


class GrantError(DomainError):
    """An RFC 6749 §5.2 error: `error` is its code (the contract picks the HTTP status)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


def issue_token(settings: Settings, sub: str, role: str, scopes: list[str]) -> dict[str, object]:
    """An RFC 6749 access-token answer for `sub`."""
    ttl = settings.access_token_ttl_seconds
    return {
        "access_token": mint_token(settings, sub, role, scopes, ttl),
        "token_type": "bearer",
        "expires_in": ttl,
        "scope": " ".join(scopes),
    }


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

    def __init__(self, db: Database, settings: Settings, keys: ServerKeys) -> None:
        self.db = db
        self.settings = settings
        self.keys = keys

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
        return issue_token(self.settings, client_id, "staff", granted)
