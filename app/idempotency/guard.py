"""Idempotency-Key on creating POSTs (draft-ietf-httpapi-idempotency-key-header).

A route opts in by declaring the header (`IdempotencyKeyHeader`); its contract's route
class then runs the handler through `guarded`. The same key from the same caller (role and
token `sub`) with the same method, path and body within the retention (24 h) replays the
first answer: status, body, `Location`/`Content-Location`, plus `Idempotent-Replayed: true`.
Another body under the key → 422; the first still running → 409 (both in the contract's
error format). Only 2xx answers are kept: a 4xx or 5xx wrote nothing, so the key is
released and a retry runs afresh (a 503 succeeds once the database is back; a corrected
body may reuse the key). A claim lapses after IDEMPOTENCY_LOCK_SECONDS, so a worker that
dies mid-request does not lock its key for good.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, Request, Response
from fastapi.routing import APIRoute

from app.auth.dependencies import peek_principal
from app.errors import Conflict, Invalid, Unavailable, Unprocessable
from app.idempotency.store import Claim, KeyStore

log = logging.getLogger("jambo.idempotency")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY = 255
# What a replay repeats besides status and body (the rest is per response: request id…).
KEPT_HEADERS = ("content-type", "location", "content-location", "etag", "cache-control")

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


def _store(request: Request) -> KeyStore:
    settings = request.app.state.settings
    return KeyStore(
        request.app.state.services.db,
        settings.idempotency_retention_hours * 3600,
        settings.idempotency_lock_seconds,
    )


async def _quietly(action: Awaitable[None]) -> None:
    """Keep the answer the client is owed when bookkeeping fails (the claim then lapses)."""
    try:
        await action
    except Unavailable:
        log.warning("idempotency bookkeeping failed; the claim lapses on its own")


async def guarded(request: Request, handler: Callable[[Request], Awaitable[Response]]) -> Response:
    """Run `handler` at most once per caller and key; replay or refuse repeats."""
    raw = request.headers.get(HEADER)
    principal = peek_principal(request) if raw is not None else None
    if raw is None or principal is None:
        return await handler(request)  # no key, or no caller: the route answers (401…)
    key = parse_key(raw)
    caller = principal.actor[:200]
    store = _store(request)
    print_ = await fingerprint(request)
    claim: Claim | None = None
    for _attempt in range(3):  # a row released or lapsed between claim and look-up: again
        claim = await store.claim(caller, key, print_)
        if claim is not None:
            break
        stored = await store.find(caller, key)
        if stored is None or not stored.live:
            continue
        if stored.fingerprint != print_:
            raise Unprocessable("This Idempotency-Key was already used with another request body.")
        if stored.status is None:
            raise Conflict("A request with this Idempotency-Key is still being processed.")
        headers = {**stored.headers, REPLAYED: "true"}
        return Response(stored.body, status_code=stored.status, headers=headers)
    if claim is None:
        raise Conflict("A request with this Idempotency-Key is still being processed.")
    try:
        response = await handler(request)
    except BaseException:
        await _quietly(store.release(claim))
        raise
    body = getattr(response, "body", None)
    if 200 <= response.status_code < 300 and isinstance(body, bytes):
        kept = {k: v for k, v in response.headers.items() if k in KEPT_HEADERS}
        await _quietly(store.save(claim, response.status_code, kept, body))
    else:
        await _quietly(store.release(claim))
    return response
