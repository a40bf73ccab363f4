"""Token endpoint (RFC 6749) and customer sign-in by e-mailed code."""

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, StrictStr

from app.auth.service import AuthService, GrantError
from app.contracts.deps import services
from app.contracts.http import JSON
from app.contracts.openapi import TYPICAL_ERRORS, DocumentPart
from app.contracts.routing import Problem, contract_route
from app.errors import Invalid

EMAIL_CODE_GRANT = "urn:jambo:email-code"


def render(request: Request, problem: Problem) -> Response:
    """OAuth-style errors: `{"error": code, "error_description": text}`."""
    code = {400: "invalid_request", 401: "invalid_client", 413: "invalid_request"}.get(
        problem.status, "server_error" if problem.status >= 500 else "invalid_request"
    )
    return JSON(
        {"error": code, "error_description": "; ".join(problem.all_messages)},
        status_code=problem.status,
    )


router = APIRouter(tags=["Auth"], route_class=contract_route(render))


class TokenOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "access_token": "eyJhbGciOi…",
                "token_type": "bearer",
                "expires_in": 3600,
                "scope": "customers:read customers:write",
            }
        }
    )
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class OAuthError(BaseModel):
    error: str
    error_description: str | None = None


class EmailCodeIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"email": "aaron97@example.org"}})
    email: StrictStr


# The two grants the token endpoint serves, as RFC 6749 form fields.
GRANTS: dict[str, Any] = {
    "oneOf": [
        {
            "title": "Client credentials",
            "description": "client_id and client_secret here, or in HTTP Basic",
            "type": "object",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {"const": "client_credentials"},
                "client_id": {"type": "string"},
                "client_secret": {"type": "string"},
                "scope": {
                    "type": "string",
                    "description": "Space-separated; default: all the client's scopes",
                },
            },
        },
        {
            "title": "E-mailed code",
            "description": "The code POST /api/auth/email-code sent to this address",
            "type": "object",
            "required": ["grant_type", "email", "code"],
            "properties": {
                "grant_type": {"const": EMAIL_CODE_GRANT},
                "email": {"type": "string", "minLength": 1},
                "code": {"type": "string", "minLength": 1},
            },
        },
    ]
}


def _service(request: Request) -> AuthService:
    return services(request).auth


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(user), unquote(password)


def _oauth_error(err: GrantError) -> Response:
    body: dict[str, Any] = {"error": err.error}
    if err.description:
        body["error_description"] = err.description
    # RFC 6749 §5.2: a client that failed to authenticate is 401 (with a challenge); every
    # other grant error is 400.
    if err.error == "invalid_client":
        return JSON(body, status_code=401, headers={"WWW-Authenticate": 'Basic realm="jambo"'})
    return JSON(body, status_code=400)


@router.post(
    "/api/auth/token",
    response_model=TokenOut,
    responses={400: {"model": OAuthError}, 401: {"model": OAuthError}},
    openapi_extra={
        "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": GRANTS}}}
    },
    summary="Exchange client credentials, or an e-mailed code, for an access token",
)
async def token(request: Request) -> Response:
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return _oauth_error(GrantError("invalid_request", "Use form encoding."))
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    service = _service(request)
    grant = fields.get("grant_type")
    try:
        if grant == "client_credentials":
            creds = _basic(request) or (
                fields.get("client_id", ""),
                fields.get("client_secret", ""),
            )
            if not all(creds):
                raise GrantError("invalid_client")
            result = await service.client_credentials(creds[0], creds[1], fields.get("scope"))
        elif grant == EMAIL_CODE_GRANT:
            if not fields.get("email") or not fields.get("code"):
                raise GrantError("invalid_request", "email and code are required.")
            result = await service.redeem_email_code(fields["email"], fields["code"])
        else:
            raise GrantError("unsupported_grant_type")
    except GrantError as err:
        return _oauth_error(err)
    return JSON(result, headers={"Cache-Control": "no-store"})


@router.post(
    "/api/auth/email-code",
    status_code=202,
    responses={
        202: {
            "content": {
                "application/json": {
                    "example": {"detail": "If the address is known, a code has been sent."}
                }
            }
        }
    },
    summary="Mail a one-time sign-in code (always 202: never reveals whether the address is known)",
)
async def email_code(body: EmailCodeIn, request: Request, background: BackgroundTasks) -> Response:
    # Answered before anything is looked up: the lookup, the code and the mail happen after
    # the reply, so a known address takes no longer to answer than an unknown one (and a
    # database or mail outage changes nothing in the answer).
    background.add_task(_service(request).send_email_code, body.email)
    return JSON({"detail": "If the address is known, a code has been sent."}, status_code=202)


def _sample_error(method: str, path: str, status: int) -> Exception | Problem | None:
    if status == 400:
        return Invalid({"email": ["This field is required."]})
    return TYPICAL_ERRORS.get(status)


PART = DocumentPart(
    tags=("Auth",),
    operation_ids={
        ("post", "/api/auth/token"): "auth_token",
        ("post", "/api/auth/email-code"): "auth_email_code",
    },
    error_schemas={"default": "OAuthError"},
    # The grant errors are RFC 6749's, written by the token route itself.
    answer_examples={
        ("post", "/api/auth/token", "400"): {"error": "invalid_grant"},
        ("post", "/api/auth/token", "401"): {"error": "invalid_client"},
    },
    render=render,
    sample_error=_sample_error,
)
