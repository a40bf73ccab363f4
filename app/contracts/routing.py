"""One mechanism for every contract to render its errors in its own format.

A router is built with `route_class=contract_route(render)`: every exception raised while
handling one of its requests (validation, domain errors, auth, oversized bodies, bugs) is
turned into a Problem and handed to that contract's `render`. Requests that match no route
(404/405) are rendered by the contract that owns the path prefix (`renderer_for_path`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import errors
from app.auth.dependencies import Bearer
from app.db.outage import is_outage, is_retryable
from app.errors import Message
from app.idempotency.guard import CURRENT_REQUEST, declares_key, once
from app.metrics import DB_UNAVAILABLE
from app.services import services_of

log = logging.getLogger("jambo.errors")

NON_FIELD = "non_field_errors"

_DEFAULT_MESSAGES = {
    400: "Bad request.",
    401: "Authentication credentials were not provided.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflict.",
    412: "Precondition failed.",
    413: "Request body is too large.",
    415: "Unsupported media type.",
    422: "Unprocessable request.",
    429: "Too many requests.",
    500: "An internal server error has occurred processing your request.",
    503: "Service temporarily unavailable.",
}


@dataclass
class Problem:
    """A contract-neutral error: status, a message, optional per-field messages."""

    status: int
    message: str
    fields: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    exc: Exception | None = None

    @property
    def all_messages(self) -> list[str]:
        """Every field message prefixed with its field, or the message alone."""
        if not self.fields:
            return [self.message]
        return [
            msg if f == NON_FIELD else f"{f}: {msg}"
            for f, msgs in self.fields.items()
            for msg in msgs
        ]


Renderer = Callable[[Request, Problem], Response]


def _pydantic_message(err: dict[str, Any]) -> Message:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return Message("This field is required.", "required")
    if kind == "string_too_long":
        limit = ctx.get("max_length")
        return Message(
            f"Ensure this field has no more than {limit} characters.", "too_long", max_length=limit
        )
    if kind == "json_invalid":
        return Message("JSON parse error: the request body is not valid JSON.", "invalid_json")
    if kind in ("string_type", "str_type"):
        return Message("Not a valid string.", "not_string")
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return Message(str(err.get("msg", "Invalid value.")), "not_object")
    return Message(str(err.get("msg", "Invalid value.")))


def validation_fields(exc: RequestValidationError) -> dict[str, list[str]]:
    """Field → messages from FastAPI's validation error (its `loc` names the field)."""
    out: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        if err.get("type") == "json_invalid" or not loc:
            name = NON_FIELD
        elif loc[0] in ("query", "path", "header"):
            name = loc[-1]
        else:
            name = ".".join(p for p in loc if not p.isdigit()) or NON_FIELD
        out.setdefault(name, []).append(_pydantic_message(err))
    return out


def problem_from(exc: Exception) -> Problem:
    """Translate any exception into a Problem (500 for the unexpected)."""
    match exc:
        case RequestValidationError():
            return Problem(400, "Invalid request.", validation_fields(exc), exc=exc)
        case errors.Invalid():
            return Problem(400, "Invalid request.", exc.errors, exc=exc)
        case errors.Unauthenticated():
            value = 'Bearer error="invalid_token"' if exc.invalid_token else "Bearer"
            return Problem(
                401,
                exc.message or _DEFAULT_MESSAGES[401],
                headers={"WWW-Authenticate": value},
                exc=exc,
            )
        case errors.Forbidden():
            return Problem(403, exc.message or _DEFAULT_MESSAGES[403], exc=exc)
        case errors.NotFound():
            return Problem(404, exc.message or _DEFAULT_MESSAGES[404], exc=exc)
        case errors.Conflict():
            fields = {exc.field: [exc.message]} if exc.field else {}
            return Problem(409, exc.message, fields, exc=exc)
        case errors.PreconditionFailed():
            return Problem(412, exc.message or _DEFAULT_MESSAGES[412], exc=exc)
        case errors.Unprocessable():
            return Problem(422, exc.message or _DEFAULT_MESSAGES[422], exc=exc)
        case errors.PayloadTooLarge():
            return Problem(413, exc.message or _DEFAULT_MESSAGES[413], exc=exc)
        case errors.TooManyRequests():
            message = exc.message or _DEFAULT_MESSAGES[429]
            return Problem(429, message, headers={"Retry-After": "60"}, exc=exc)
        case errors.Unavailable():
            return Problem(
                503, exc.message or _DEFAULT_MESSAGES[503], headers={"Retry-After": "5"}, exc=exc
            )
        case StarletteHTTPException():
            detail = exc.detail if isinstance(exc.detail, str) else None
            message = _DEFAULT_MESSAGES.get(exc.status_code) or detail or "Error."
            return Problem(exc.status_code, message, headers=dict(exc.headers or {}), exc=exc)
    if is_outage(exc):  # a database failure that escaped the Database handle: still a 503
        DB_UNAVAILABLE.inc()  # (the handle counted those it turned into Unavailable)
        message = "The database is unavailable, try again shortly."
        return Problem(503, message, headers={"Retry-After": "5"}, exc=exc)
    return Problem(500, _DEFAULT_MESSAGES[500], exc=exc)


def render_problem(request: Request, exc: Exception, render: Renderer) -> Response:
    """Build the contract's response for an exception; log the unexpected ones."""
    problem = problem_from(exc)
    if problem.status >= 500 and problem.status != 503:
        log.error(
            "unhandled error",
            exc_info=exc,
            extra={"request_id": getattr(request.state, "request_id", None)},
        )
    response = render(request, problem)
    response.headers.update(problem.headers)
    return response


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def read_limited(request: Request, limit: int) -> None:
    """Read the body once, refusing more than `limit` bytes even without Content-Length."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(f"Request body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"Request body is larger than {limit} bytes.")
        chunks.append(chunk)
    request._body = b"".join(chunks)  # Starlette serves later .body()/.json() from this


async def retrying_once(
    handler: Callable[[Request], Coroutine[Any, Any, Response]], request: Request
) -> Response:
    """Run the handler; after a deadlock or serialization failure, which rolled all of its
    database work back, run it once more (the body was read once and is kept)."""
    try:
        return await handler(request)
    except Exception as exc:
        if not is_retryable(exc):
            raise
        log.info("retrying after a transient conflict", extra={"error": type(exc).__name__})
        await asyncio.sleep(random.uniform(0.01, 0.05))  # let the other transaction finish
        return await handler(request)


def _default_limit(request: Request) -> int:
    limit: int = request.app.state.settings.max_body_bytes
    return limit


def contract_route(
    render: Renderer,
    *,
    body_limit: Callable[[Request], int] = _default_limit,
    admit: Callable[[Request], None] | None = None,
    own_errors: Callable[[Request, Exception], Response | None] | None = None,
    finish: Callable[[Request, Response], Response] | None = None,
) -> type[APIRoute]:
    """An APIRoute class whose errors are rendered by `render`.

    The hooks let a contract keep its conventions in one place: `body_limit` (bytes a write
    may send), `admit` (raise to refuse a request before its handler runs), `own_errors`
    (a response for the contract's own exceptions, else None) and `finish` (applied to every
    response, errors included).
    """

    class ContractRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            call = self.dependant.call
            if declares_key(self) and call is not None and not hasattr(call, "__jambo_once__"):
                # After the route's dependencies (its bearer policy among them), before it.
                self.dependant.call = once(call)
            direct = _direct_handler(self)
            handler = direct or super().get_route_handler()

            async def handle(request: Request) -> Response:
                CURRENT_REQUEST.set(request)
                try:
                    if request.method in WRITES:
                        await read_limited(request, body_limit(request))
                    if admit is not None:
                        admit(request)
                    response = await retrying_once(handler, request)
                    if response.status_code < 400 and (
                        request.method in WRITES or request.scope["state"].get("wrote")
                    ):
                        services_of(request).changes.poke()  # the change feed's long polls
                except Exception as exc:  # noqa: BLE001 - every error gets the contract's shape
                    mine = own_errors(request, exc) if own_errors is not None else None
                    response = mine or render_problem(request, exc, render)
                return finish(request, response) if finish is not None else response

            # app/contracts/lane.py calls it for the GETs the router would bring here.
            self.lane_handler = handle if direct is not None else None
            return handle

    return ContractRoute


def _direct_handler(
    route: APIRoute,
) -> Callable[[Request], Coroutine[Any, Any, Response]] | None:
    """For a GET whose only inputs are plain string path parameters, the request and one
    bearer policy (the hot reads by id): a handler that calls the policy and the endpoint
    itself. FastAPI's general machinery (dependency solving, parameter models, response
    serialisation) was a third of such a request's own time, and has nothing to do here:
    a path string needs no validation and the endpoint returns its own Response. The
    OpenAPI document is built from the same declarations, unchanged."""
    dependant = route.dependant
    call = dependant.call
    if route.methods != {"GET"} or call is None or not asyncio.iscoroutinefunction(call):
        return None
    inputs = (
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        dependant.body_params,
    )
    if any(inputs) or dependant.response_param_name or dependant.background_tasks_param_name:
        return None
    if any(
        p.field_info.annotation is not str or p.field_info.metadata for p in dependant.path_params
    ):
        return None
    if len(dependant.dependencies) != 1:
        return None
    (policy,) = dependant.dependencies
    bearer = policy.call
    if not isinstance(bearer, Bearer) or policy.dependencies or policy.name is None:
        return None
    path_names = [p.name for p in dependant.path_params]
    request_name = dependant.request_param_name
    principal_name = policy.name

    async def direct(request: Request) -> Response:
        params = request.path_params
        values: dict[str, Any] = {name: params[name] for name in path_names}
        if request_name is not None:
            values[request_name] = request
        values[principal_name] = await bearer(request)
        response: Response = await call(**values)
        return response

    return direct


def renderer_for_path(path: str, table: list[tuple[str, Renderer]]) -> Renderer | None:
    """The renderer of the longest prefix in `table` that `path` starts with."""
    best: tuple[str, Renderer] | None = None
    for prefix, render in table:
        if path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, render)
    return best[1] if best else None
