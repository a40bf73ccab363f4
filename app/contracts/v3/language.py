"""Customer API v3 (seed 004): the preferred language, for customers and anonymous callers."""

import re
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app.auth.dependencies import OptionalPrincipal
from app.contracts.deps import CustomersDep, SettingsDep
from app.contracts.http import JSON
from app.contracts.routing import Problem, contract_route
from app.contracts.v3.http import NOT_AUTHENTICATED, customer_of, messages, read_object
from app.customers.schemas import CustomerRecord
from app.errors import Forbidden, Invalid, NotFound, Unauthenticated


def render(request: Request, problem: Problem) -> Response:
    """Errors in this endpoint's own shape: `{"language": null, "error_message": …}`."""
    message = NOT_AUTHENTICATED if problem.status == 401 else messages(problem)
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSON(
        {"language": None, "error_message": message},
        status_code=problem.status,
        headers=headers,
    )


router = APIRouter(tags=["Customer API v3: language"], route_class=contract_route(render))

MAX_RANGES = 32
_TAG = re.compile(r"^(\*|[a-z]{1,8}(-[a-z0-9]{1,8})*)$")


def _ranges(header: str) -> list[tuple[str, float]]:
    """(language range, quality) pairs of an Accept-Language header; malformed ones dropped."""
    out: list[tuple[str, float]] = []
    for item in header.split(",")[:MAX_RANGES]:
        tag, *params = (part.strip() for part in item.split(";"))
        tag = tag.lower().replace("_", "-")
        if not _TAG.fullmatch(tag):
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = -1.0
        if 0.0 <= quality <= 1.0:
            out.append((tag, quality))
    return out


def _lookup(tag: str, supported: dict[str, str]) -> str | None:
    """RFC 4647 lookup ("sw-ke" → "sw"), then a supported sub-tag of the range ("pt" → "pt-br")."""
    candidate = tag
    while candidate:
        if candidate in supported:
            return supported[candidate]
        candidate = candidate.rpartition("-")[0]
    return next((code for low, code in supported.items() if low.startswith(tag + "-")), None)


def negotiate(header: str | None, languages: Sequence[str]) -> str:
    """The best supported language for an Accept-Language header (default "en")."""
    supported = {code.lower(): code for code in languages}
    default = supported.get("en") or languages[0]
    ranges = _ranges(header or "")
    refused = {tag for tag, q in ranges if q == 0.0}
    # Highest quality first; equal qualities keep the order the client gave (sort is stable).
    for tag, _q in sorted((r for r in ranges if r[1] > 0.0), key=lambda r: -r[1]):
        if tag == "*":
            allowed = [c for low, c in supported.items() if low not in refused]
            return default if default.lower() not in refused else (allowed or [default])[0]
        match = _lookup(tag, supported)
        if match is not None and match.lower() not in refused:
            return match
    return default


async def caller(principal: OptionalPrincipal, customers: CustomersDep) -> CustomerRecord | None:
    """The calling customer, None for anonymous callers; staff tokens are refused."""
    if principal is None:
        return None
    if not principal.is_customer:
        raise Forbidden("Only customers have a preferred language.")
    return await customer_of(principal, customers)


Caller = Annotated[CustomerRecord | None, Depends(caller)]


# A token is optional here (FastAPI adds the bearer requirement; `{}` admits anonymous).
ANONYMOUS_ALLOWED: list[dict[str, list[str]]] = [{}]


class LanguageOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"language": "en", "error_message": None}}
    )
    language: str | None = Field(description="Language short code")
    error_message: str | None = Field(description="Why the request failed, else null")


class LanguageSet(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"language": "sw"}})
    language: str = Field(description="Language short code")


class LanguageError(BaseModel):
    language: None
    error_message: str


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": LanguageError, "description": "Invalid or expired token (anonymous is fine)"},
    403: {"model": LanguageError, "description": "A staff token"},
}
VARY = {"Vary": "Accept-Language, Authorization"}


@router.get(
    "/api/v3/customer/language/",
    response_model=LanguageOut,
    responses=ERRORS,
    summary="Preferred language: the customer's, or negotiated from Accept-Language",
    openapi_extra={"security": ANONYMOUS_ALLOWED},
)
async def get_language(
    customer: Caller,
    settings: SettingsDep,
    accept_language: Annotated[
        str | None, Header(description="Used for anonymous callers", examples=["sw-KE, en;q=0.8"])
    ] = None,
) -> Response:
    if customer is not None:
        code = customer.language
    else:
        code = negotiate(accept_language, settings.supported_languages)
    return JSON({"language": code, "error_message": None}, headers=VARY)


@router.post(
    "/api/v3/customer/language/",
    response_model=LanguageSet,
    responses={
        **ERRORS,
        400: {"model": LanguageError, "description": "Missing or unsupported language code"},
    },
    openapi_extra={
        "security": ANONYMOUS_ALLOWED,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": LanguageSet.model_json_schema(),
                    "example": {"language": "sw"},
                }
            },
        },
    },
    summary="Change the customer's preferred language (anonymous: echoed, nothing saved)",
)
async def set_language(request: Request, customer: Caller, customers: CustomersDep) -> Response:
    body = await read_object(request) or {}
    value = body.get("language")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise Invalid({"language": ["A language code is required."]})
    if customer is None:
        code = customers.check({"language": value})["language"]
    else:
        try:
            actor = f"customer:{customer.ulid}"
            record = await customers.update(customer.id, {"language": value}, actor=actor)
            code = record.language
        except NotFound:
            raise Unauthenticated(NOT_AUTHENTICATED, invalid_token=True) from None
    return JSON({"language": code})
