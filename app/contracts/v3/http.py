"""The v3 contract's HTTP conventions, shared by its routes: errors as `{"detail"}`, the
calling customer, and how a body is read (a JSON object or form fields)."""

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import Response

from app.auth.dependencies import CustomerPrincipal
from app.auth.tokens import Principal
from app.contracts.deps import services
from app.contracts.http import JSON
from app.contracts.routing import NON_FIELD, Problem
from app.customers.schemas import CustomerRecord
from app.customers.service import CustomerService
from app.errors import Invalid

NOT_AUTHENTICATED = "Customer not authenticated"
BAD_JSON = "JSON parse error: the request body is not valid JSON."


def messages(problem: Problem) -> str:
    """The problem's messages for a client, without field prefixes."""
    found = [m for msgs in problem.fields.values() for m in msgs]
    return " ".join(found) if found else problem.message


def render(request: Request, problem: Problem) -> Response:
    """Errors as `{"detail": message}`; every 401 is "Customer not authenticated"."""
    if problem.status == 401:
        return JSON(
            {"detail": NOT_AUTHENTICATED},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},  # refined to error="invalid_token" if so
        )
    return JSON({"detail": messages(problem)}, status_code=problem.status)


async def customer_of(principal: Principal, customers: CustomerService) -> CustomerRecord:
    """The record behind a customer token; a token for a vanished customer is a 401."""
    return await customers.for_token(principal.sub)


async def current_customer(request: Request, principal: CustomerPrincipal) -> CustomerRecord:
    """The calling customer's record (customer tokens only: staff get 403)."""
    return await customer_of(principal, services(request).customers)


CurrentCustomer = Annotated[CustomerRecord, Depends(current_customer)]


async def read_object(request: Request) -> dict[str, Any] | None:
    """The body as a dict (a JSON object, or form fields); None when it is empty."""
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type or "multipart/form-data" in content_type:
        fields = await request.form()
        return {k: v for k, v in fields.items() if isinstance(v, str)} or None
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Invalid({NON_FIELD: [BAD_JSON]}) from None
    if not isinstance(data, dict):
        raise Invalid({NON_FIELD: ["The request body must be a JSON object."]})
    return data
