"""Token endpoint (RFC 6749) and customer sign-in by e-mailed code."""

import base64
import binascii
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, StrictStr
from starlette.routing import BaseRoute

from app.auth.dependencies import Bearer
from app.auth.limits import client_of
from app.auth.service import AuthService, GrantError
from app.auth.tokens import STAFF_SCOPES
from app.contracts.deps import services
from app.contracts.http import JSON
from app.contracts.openapi import TYPICAL_ERRORS, DocumentContext, DocumentPart, Operation
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
    # The README's own example customer: the documented flow works on a fresh database.
    model_config = ConfigDict(json_schema_extra={"example": {"email": "cynthia@example.org"}})
    email: StrictStr


# The token endpoint's form (RFC 6749 encoding): one flat object, so that Swagger UI shows a
# field per name and sends only those filled in (a `oneOf` there became one JSON box, sent
# with every sample value: `scope=string` was refused). Each grant has its named example.
def _field(description: str) -> dict[str, Any]:
    """A text field of the form; its empty example keeps Swagger UI from filling it in with
    "string" (a field left empty is not sent)."""
    return {"type": "string", "description": description, "examples": [""]}


TOKEN_REQUEST: dict[str, Any] = {
    "title": "TokenRequest",
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials", EMAIL_CODE_GRANT]},
        "client_id": _field("client_credentials: the API client (here, or as HTTP Basic user)"),
        "client_secret": _field("client_credentials: its secret (here, or as HTTP Basic password)"),
        "scope": _field("client_credentials: space-separated; left out: all the client's scopes"),
        "email": _field(f"{EMAIL_CODE_GRANT}: the address the code was mailed to"),
        "code": _field(f"{EMAIL_CODE_GRANT}: the code from POST /api/auth/email-code"),
    },
}
GRANT_EXAMPLES: dict[str, Any] = {
    "client_credentials": {
        "summary": "Staff: client credentials (jambo clients create)",
        "value": {
            "grant_type": "client_credentials",
            "client_id": "5f0c3e9a1b2d4c6e8f0a1b2c",
            "client_secret": "the secret printed once by jambo clients create",
        },
    },
    "email_code": {
        "summary": "Customer: the e-mailed code (POST /api/auth/email-code, then jambo mail)",
        "value": {"grant_type": EMAIL_CODE_GRANT, "email": "cynthia@example.org", "code": "123456"},
    },
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


# What to do about a grant error the service raised without a description (by its code).
# invalid_client and invalid_grant stay bare: they answer alike whatever the cause.
_DESCRIPTIONS = {
    "invalid_scope": "Ask only for scopes this client was given (jambo clients list shows "
    "them), or leave scope out for all of them.",
    "unsupported_grant_type": f"grant_type must be client_credentials or {EMAIL_CODE_GRANT}.",
}


def _oauth_error(err: GrantError) -> Response:
    body: dict[str, Any] = {"error": err.error}
    description = err.description or _DESCRIPTIONS.get(err.error)
    if description:
        body["error_description"] = description
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
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"$ref": "#/components/schemas/TokenRequest"},
                    "examples": GRANT_EXAMPLES,
                }
            },
        }
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
            client = request.client.host if request.client else None
            result = await services(request).sign_in.redeem(
                fields["email"], fields["code"], client_of(client)
            )
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
    client = client_of(request.client.host if request.client else None)
    background.add_task(services(request).sign_in.send, body.email, client)
    return JSON({"detail": "If the address is known, a code has been sent."}, status_code=202)


# ----------------------------------------------------------------------------- the document

SCHEME = "OAuth2"
_SCOPES = {
    "customers:read": "Read customers (Jambo, v1, exports)",
    "customers:write": "Create, change and delete customers",
    "loyalty:read": "Read the loyalty register",
    "loyalty:write": "Change the loyalty register",
    "events:read": "Read the change feed",
}


def staff_scopes(routes: Iterable[BaseRoute]) -> dict[Operation, str]:
    """The staff scope each documented operation needs, from its bearer policy."""
    found: dict[Operation, str] = {}

    def walk(dependant: Dependant) -> Iterator[Bearer]:
        for dependency in dependant.dependencies:
            if isinstance(dependency.call, Bearer):
                yield dependency.call
            yield from walk(dependency)

    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for bearer in walk(route.dependant):
            if bearer.staff_scope:
                for method in route.methods or ():
                    found[(method.lower(), route.path)] = bearer.staff_scope
    return found


def _sign_in(schema: dict[str, Any], context: DocumentContext) -> None:
    """Swagger UI's Authorize dialog takes a client id and secret: an OAuth2 client-credentials
    scheme beside the bearer one, on every operation a staff token may call. The token URL is
    relative (Swagger UI resolves it against the page), so it holds under ROOT_PATH too."""
    schemes = schema["components"].setdefault("securitySchemes", {})
    schemes[SCHEME] = {
        "type": "oauth2",
        "description": "Staff: an API client's id and secret (`make run` prints one for "
        "development; `jambo clients create` makes others). Customers: the e-mailed code at "
        "POST /api/auth/token, then the token as HTTPBearer.",
        "flows": {
            "clientCredentials": {
                "tokenUrl": "api/auth/token",
                "scopes": {scope: _SCOPES.get(scope, scope) for scope in STAFF_SCOPES},
            }
        },
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            scope = context.staff_scopes.get((method, path))
            if scope and operation.get("security"):
                operation["security"].append({SCHEME: [scope]})


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
    components={"TokenRequest": TOKEN_REQUEST},
    adjust=_sign_in,
    error_schemas={"default": "OAuthError"},
    # The grant errors are RFC 6749's, written by the token route itself.
    answer_examples={
        ("post", "/api/auth/token", "400"): {"error": "invalid_grant"},
        ("post", "/api/auth/token", "401"): {"error": "invalid_client"},
    },
    render=render,
    sample_error=_sample_error,
)
