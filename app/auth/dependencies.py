"""Bearer policies as FastAPI dependencies: who may call a route (role and scope)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from app.auth.tokens import Principal
from app.errors import Forbidden, Unauthenticated
from app.services import services_of


def _authenticate(request: Request) -> Principal | None:
    """The caller's Principal, None without an Authorization header; bad tokens are refused."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Invalid token.", invalid_token=True)
    principal = services_of(request).verifier.verify(token.strip())
    request.scope["state"]["principal_sub"] = principal.sub  # for the access log line
    return principal


Policy = Callable[[Principal | None], Principal | None]


class Bearer(HTTPBearer):
    """The bearer scheme as the OpenAPI declares it (Swagger UI's "Authorize"), with our own
    parsing and one access policy.

    Being the security scheme itself, each policy is a single dependency with nothing under
    it: on the hottest routes FastAPI's cost per dependency is a visible share of a request.
    """

    def __init__(self, policy: Policy, staff_scope: str | None = None) -> None:
        super().__init__(
            auto_error=False,
            bearerFormat="JWT",
            scheme_name="HTTPBearer",
            description="A JWT from POST /api/auth/token",
        )
        self.policy = policy
        self.staff_scope = staff_scope  # the scope a staff token needs here (for the docs)

    async def __call__(self, request: Request) -> Principal | None:  # type: ignore[override]
        principal = _authenticate(request)
        if principal is not None and principal.is_staff:
            # A revoked client's tokens stop here (its state is cached a few seconds per sub).
            await services_of(request).client_states.refuse_revoked(principal.sub)
        admitted = self.policy(principal)
        # Who the route admitted (the Idempotency-Key's caller); the scope's state dict, as
        # `request.state` would build an object per access on the hottest path.
        request.scope["state"]["principal"] = admitted
        return admitted


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

    return Bearer(policy, staff_scope=scope)


def staff_or_self(scope: str) -> Bearer:
    """Admit staff with `scope`, and customers (the route checks they act on themselves)."""

    def policy(principal: Principal | None) -> Principal:
        principal = _signed_in(principal)
        if principal.is_staff and scope not in principal.scopes:
            raise Forbidden("You do not have permission to perform this action.")
        return principal

    return Bearer(policy, staff_scope=scope)


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
StaffEventsRead = Annotated[Principal, Depends(staff_with("events:read"))]
