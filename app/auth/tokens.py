"""Bearer JWTs: the Principal, verification of a token's signature and claims, minting."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jose import jwt

from app.auth.signing import hmac_secret
from app.config import Settings
from app.errors import Unauthenticated

STAFF_SCOPES = (
    "customers:read",
    "customers:write",
    "loyalty:read",
    "loyalty:write",
    "events:read",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a staff client with scopes, or a customer acting on their own record."""

    sub: str
    role: str
    scopes: frozenset[str]

    @property
    def is_staff(self) -> bool:
        return self.role == "staff"

    @property
    def is_customer(self) -> bool:
        return self.role == "customer"

    @property
    def actor(self) -> str:
        """Who did it, for audit lines and idempotency keys: `staff:ID` or `customer:ULID`."""
        return f"{self.role}:{self.sub}"


class TokenVerifier:
    """Checks signature, algorithm allow-list, expiry, issuer and audience; caches good tokens."""

    def __init__(self, settings: Settings, cache_size: int = 2048) -> None:
        self.settings = settings
        self.key: str = (
            hmac_secret(settings) if settings.jwt_uses_hmac else (settings.jwt_public_key or "")
        )
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size

    def verify(self, token: str) -> Principal:
        """The Principal of a valid token, else Unauthenticated(invalid_token=True)."""
        hit = self._cache.get(token)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=self.settings.jwt_algorithms,
                audience=self.settings.jwt_audience or None,
                issuer=self.settings.jwt_issuer or None,
                options=_REQUIRED,
            )
            principal, expires = _principal(claims)
        except Exception as exc:  # noqa: BLE001
            # Whatever a token holds (Infinity, huge numbers, odd types) is the caller's
            # fault: python-jose lets some of it escape as OverflowError and the like.
            raise Unauthenticated("Invalid token.", invalid_token=True) from exc
        self._cache[token] = (principal, expires)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal


# python-jose checks iss/aud only when the claim is there: absent ones are refused here.
_REQUIRED = {
    "require_exp": True,
    "require_sub": True,
    "require_iss": True,
    "require_aud": True,
}


_LAST_SECOND = 253_402_300_800  # 10000-01-01T00:00:00Z: past it no datetime can hold an exp


def _is_name(value: object, max_length: int = 255) -> bool:
    """A non-empty printable string without surrounding white space (no control characters)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and value.isprintable()
        and value == value.strip()
    )


def _principal(claims: dict[str, Any]) -> tuple[Principal, float]:
    """The Principal and expiry of decoded claims; ValueError for anything out of shape."""
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise ValueError("exp must be a finite number")
    if not 0 < exp < _LAST_SECOND:
        raise ValueError("exp past any date a clock can show")
    expires = float(exp)
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if not _is_name(claims.get("iss")) or not audiences or not all(map(_is_name, audiences)):
        raise ValueError("iss and aud are required")
    role, sub = claims.get("role"), claims.get("sub")
    if not isinstance(role, str) or role not in ("staff", "customer"):
        raise ValueError("role must be staff or customer")
    if not isinstance(sub, str) or not _is_name(sub):
        raise ValueError("sub must be a printable name")
    scope = claims.get("scope", "") if role == "staff" else ""
    if not isinstance(scope, str):
        raise ValueError("scope must be a string")
    return Principal(sub, role, frozenset(scope.split())), expires


def mint_token(
    settings: Settings,
    sub: str,
    role: str,
    scopes: Iterable[str] = (),
    ttl_seconds: int | None = None,
) -> str:
    """Sign a token with the configured key (HMAC secret, or JWT_PRIVATE_KEY for RS/ES)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "iat": now,
        "exp": now + (ttl_seconds or settings.access_token_ttl_seconds),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    if role == "staff":
        claims["scope"] = " ".join(scopes)
    key = hmac_secret(settings) if settings.jwt_uses_hmac else (settings.jwt_private_key or "")
    if not key:
        raise RuntimeError("JWT_PRIVATE_KEY is needed to sign tokens with a public-key algorithm")
    return str(jwt.encode(claims, key, algorithm=settings.jwt_algorithms[0]))
