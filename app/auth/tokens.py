"""Bearer JWTs: verification, the Principal, and role/scope dependencies."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from jose import jwt

from app.auth.signing import hmac_secret
from app.config import Settings
from app.errors import Forbidden, Unauthenticated

STAFF_SCOPES = ("customers:read", "customers:write", "loyalty:read", "loyalty:write")


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


def _verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.services.verifier
    return verifier


def _authenticate(request: Request) -> Principal | None:
    """The caller's Principal, None without an Authorization header; bad tokens are refused."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Invalid token.", invalid_token=True)
    principal = _verifier(request).verify(token.strip())
    request.state.principal_sub = principal.sub  # for the access log line
    return principal


def peek_principal(request: Request) -> Principal | None:
    """The caller's Principal when the request carries a valid token, else None (the route's
    own policy answers the 401 later)."""
    try:
        return _authenticate(request)
    except Unauthenticated:
        return None


Policy = Callable[[Principal | None], Principal | None]


class Bearer(HTTPBearer):
    """The bearer scheme as the OpenAPI declares it (Swagger UI's "Authorize"), with our own
    parsing and one access policy.

    Being the security scheme itself, each policy is a single dependency with nothing under
    it: on the hottest routes FastAPI's cost per dependency is a visible share of a request.
    """

    def __init__(self, policy: Policy) -> None:
        super().__init__(
            auto_error=False,
            bearerFormat="JWT",
            scheme_name="HTTPBearer",
            description="A JWT from POST /api/auth/token",
        )
        self.policy = policy

    async def __call__(self, request: Request) -> Principal | None:  # type: ignore[override]
        principal = _authenticate(request)
        if principal is not None and principal.is_staff:
            # A revoked client's tokens stop here (its state is cached a few seconds per sub).
            await request.app.state.services.client_states.refuse_revoked(principal.sub)
        return self.policy(principal)


def _anyone(principal: Principal | None) -> Principal | None:
    return principal


def _signed_in(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthenticated("Authentication credentials were not provided.")
    return principal


def staff_with(scope: str) -> Bearer:
    """Admit staff tokens carrying `scope`."""

    def policy(principal: Principal | None) -> Principal:
        principal = _signed_in(principal)
        if not principal.is_staff or scope not in principal.scopes:
            raise Forbidden("You do not have permission to perform this action.")
        return principal

    return Bearer(policy)


def staff_or_self(scope: str) -> Bearer:
    """Admit staff with `scope`, and customers (the route checks they act on themselves)."""

    def policy(principal: Principal | None) -> Principal:
        principal = _signed_in(principal)
        if principal.is_staff and scope not in principal.scopes:
            raise Forbidden("You do not have permission to perform this action.")
        return principal

    return Bearer(policy)


def _customer(principal: Principal | None) -> Principal:
    principal = _signed_in(principal)
    if not principal.is_customer:
        raise Forbidden("You do not have permission to perform this action.")
    return principal


optional_principal = Bearer(_anyone)  # the caller's Principal, or None when anonymous
customer_only = Bearer(_customer)  # customer tokens only: staff on a self-service route is 403


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
CustomerPrincipal = Annotated[Principal, Depends(customer_only)]
StaffCustomersRead = Annotated[Principal, Depends(staff_with("customers:read"))]
StaffCustomersWrite = Annotated[Principal, Depends(staff_with("customers:write"))]
StaffLoyaltyRead = Annotated[Principal, Depends(staff_with("loyalty:read"))]
StaffLoyaltyWrite = Annotated[Principal, Depends(staff_with("loyalty:write"))]
