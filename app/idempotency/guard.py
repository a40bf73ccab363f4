"""Idempotency-Key on creating POSTs (draft-ietf-httpapi-idempotency-key-header).

A route opts in by declaring the header (`IdempotencyKeyHeader`); its contract's route class
then runs the endpoint through `once`, after FastAPI has resolved the route's dependencies:
a replay is an answer like any other, so the caller's token, scope and revocation are
checked before the store is consulted (a token that could not make the request now gets its
401/403). The same key from the same caller (the whole identity: role and `sub`) with the
same method, path and body within the retention (24 h) replays the first answer: status,
body, `Location`/`Content-Location`, the security headers, plus `Idempotent-Replayed: true`.
Another body under the key → 422; the first still running → 409; a caller holding its cap of
live keys → 429 (all in the contract's error format). Only 2xx answers are kept: a 4xx or 5xx
wrote nothing, so a retry runs afresh (a 503 succeeds once the database is back; a corrected
body may reuse the key).

The look-up, the work and the answer are one unit of work (app/idempotency/store.py says
why); an answer holding a customer's data is erased with the customer (a foreign key).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Annotated, Any

from fastapi import Header, Request, Response
from fastapi.routing import APIRoute

from app.errors import Conflict, Invalid, TooManyRequests, Unprocessable
from app.idempotency.store import CapReached, KeyStore, Stored, caller_id
from app.services import services_of

log = logging.getLogger("jambo.idempotency")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY = 255
# What a replay repeats besides status and body (the rest is per response: request id…).
KEPT_HEADERS = (
    "content-type",
    "location",
    "content-location",
    "etag",
    "cache-control",
    "content-security-policy",
    "referrer-policy",
)
IN_FLIGHT = "A request with this Idempotency-Key is still being processed."
OTHER_BODY = "This Idempotency-Key was already used with another request body."

# The request being handled, for `once` (FastAPI hands an endpoint only its parameters).
CURRENT_REQUEST: ContextVar[Request] = ContextVar("jambo_request")

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description=(
            "Optional; up to 255 printable ASCII characters (a quoted string as in the IETF "
            "draft, or bare), unique per request you mean once. A retry with the same key "
            "and body within 24 h replays the first 2xx answer with `Idempotent-Replayed: "
            "true`; another body → 422; the first still running → 409."
        ),
        examples=["4f0c7b9e-2d1a-4c55-9a57-1b1f3c2e8d10"],
    ),
]


def declares_key(route: APIRoute) -> bool:
    """Whether a route takes an Idempotency-Key (declared as a header parameter)."""
    return any(p.alias.lower() == HEADER.lower() for p in route.dependant.header_params)


def parse_key(raw: str) -> str:
    """The key of a header value (a quoted sf-string or bare); Invalid when malformed."""
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 0 < len(key) <= MAX_KEY or not all(" " <= ch <= "~" for ch in key):
        raise Invalid({HEADER: [f"must be 1 to {MAX_KEY} printable ASCII characters"]})
    return key


async def fingerprint(request: Request) -> bytes:
    """SHA-256 of method, path (with query) and body: what must match for a replay."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}?{request.url.query}\n".encode())
    digest.update(await request.body())
    return digest.digest()


class _Undo(Exception):
    """Leave the unit of work without committing, answering `response` (or looking again)."""

    def __init__(self, response: Response | None) -> None:
        super().__init__()
        self.response = response


def _replay(stored: Stored) -> Response:
    return Response(stored.body, stored.status, {**stored.headers, REPLAYED: "true"})


def once(endpoint: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """The endpoint, run at most once per caller and Idempotency-Key (see the module)."""

    @functools.wraps(endpoint)
    async def guarded(**values: Any) -> Response:
        request = CURRENT_REQUEST.get()
        raw = request.headers.get(HEADER)
        principal = request.scope["state"].get("principal")
        if raw is None or principal is None:
            return await endpoint(**values)
        key = parse_key(raw)
        caller = caller_id(principal.actor)
        print_ = await fingerprint(request)
        services = services_of(request)
        store: KeyStore = services.idempotency
        for _look in range(2):  # a second look when another request's answer landed meanwhile
            try:
                async with services.db.unit_of_work() as unit:
                    conn = unit.driver
                    found = await store.find(conn, caller, key)
                    if found.stored is not None:
                        if found.stored.fingerprint != print_:
                            raise Unprocessable(OTHER_BODY)
                        return _replay(found.stored)
                    if not found.free:
                        raise Conflict(IN_FLIGHT)
                    try:
                        await store.check_cap(conn, caller)
                    except CapReached:
                        raise TooManyRequests(
                            "Too many live Idempotency-Keys for this caller; retry later."
                        ) from None
                    response = await endpoint(**values)
                    body = getattr(response, "body", None)
                    if not 200 <= response.status_code < 300 or not isinstance(body, bytes):
                        raise _Undo(response)
                    kept = {k: v for k, v in response.headers.items() if k in KEPT_HEADERS}
                    person = unit.people[0] if unit.people else None
                    answer = (response.status_code, kept, body)
                    if await store.save(conn, caller, key, print_, answer, person):
                        return response
                    raise _Undo(None)
            except _Undo as undo:
                if undo.response is not None:
                    return undo.response
                log.info("an Idempotency-Key was answered meanwhile: looking again")
        raise Conflict(IN_FLIGHT)

    guarded.__jambo_once__ = True  # type: ignore[attr-defined]
    return guarded
