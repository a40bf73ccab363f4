"""The change feed, in the v1 contract: `GET /api/v1/events?after=&limit=&wait=` (staff with
`events:read`), CloudEvents 1.0 in the v1 error envelope's company (app/events/feed.py)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app.auth.dependencies import StaffEventsRead
from app.contracts.deps import services
from app.contracts.http import JSON
from app.contracts.routing import contract_route
from app.contracts.v1.router import render
from app.contracts.v1.schemas import envelope_errors
from app.errors import Invalid, Message
from app.events.feed import MAX_LIMIT, BadCursor, parse_cursor

PATH = "/api/v1/events"
DEFAULT_LIMIT, MAX_WAIT = 100, 30.0
UNSETTLED_RECHECK = 1.0
_EXAMPLE_EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "1042",
    "source": "/jambo",
    "type": "jambo.customer.updated",
    "subject": "01HWJ8WH9X8WBK65EMGY9YKPBS",
    "time": "2026-12-06T09:30:00.123456Z",
    "datacontenttype": "application/json",
    "data": {"id": "01HWJ8WH9X8WBK65EMGY9YKPBS", "fields": ["address_city", "phone_number"]},
}

router = APIRouter(tags=["Change feed"], route_class=contract_route(render))


class EventData(BaseModel):
    """What changed: the record's id and the names of the fields set or changed (never a
    value: read the record through the API)."""

    id: str = Field(description="The customer's ULID; a loyalty member's internal id")
    fields: list[str]


class CloudEvent(BaseModel):
    """One committed create, update or delete, as a CloudEvents 1.0 JSON event."""

    specversion: str = Field(examples=["1.0"])
    id: str = Field(description="Unique, stable across reads; also the cursor after it")
    source: str
    type: str = Field(
        description="jambo.customer.created|updated|deleted, "
        "jambo.loyalty_member.created|updated|deleted"
    )
    subject: str = Field(description="The customer's ULID, the member's loyalty_id")
    time: str = Field(description="RFC 3339, UTC")
    datacontenttype: str = Field(examples=["application/json"])
    data: EventData


class EventPage(BaseModel):
    """Events in commit order per record, and the cursor to ask with next time."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"events": [_EXAMPLE_EVENT], "next": "1042"}}
    )
    events: list[CloudEvent]
    next: str = Field(description="Pass as `after`; unchanged when no event came")


def _query(request: Request) -> tuple[int | None, int, float]:
    """`after`, `limit` and `wait`, or Invalid naming each bad one."""
    q = request.query_params
    errors: dict[str, list[str]] = {}
    after: int | None = None
    if q.get("after"):  # absent or blank: from the oldest event kept
        try:
            after = parse_cursor(q["after"])
        except BadCursor:
            errors["after"] = [Message("must be a cursor this feed gave (`next`)", "bad_cursor")]
    limit = DEFAULT_LIMIT
    if q.get("limit") is not None:
        text = q["limit"].strip()
        if text.isascii() and text.isdigit() and 1 <= int(text[:5]) <= MAX_LIMIT:
            limit = int(text)
        else:
            errors["limit"] = [Message(f"must be a whole number from 1 to {MAX_LIMIT}", "range")]
    wait = 0.0
    if q.get("wait") is not None:
        try:
            wait = float(q["wait"])
        except ValueError:
            wait = math.nan
        if not 0 <= wait <= MAX_WAIT:
            errors["wait"] = [Message("must be a number of seconds from 0 to 30", "range")]
    unknown = [name for name in q if name not in ("after", "limit", "wait")]
    for name in unknown[:10]:
        errors[name[:50]] = [Message("is not a parameter of the feed", "unknown_parameter")]
    if errors:
        raise Invalid(errors)
    return after, limit, wait


@router.get(
    PATH,
    response_model=EventPage,
    responses=envelope_errors(400),
    summary="Follow every committed change (CloudEvents), with an optional long poll",
    description="`after`: the `next` of the previous answer (absent: from the oldest event "
    "kept, EVENTS_RETENTION_DAYS). `limit`: 1–1000 (100). `wait`: 0–30 seconds to wait for "
    "an event when none is there yet. Following `next`, every committed event comes once, in "
    "commit order for each record. Events are thin: read the record through the API.",
    openapi_extra={
        "parameters": [
            {
                "name": "after",
                "in": "query",
                "required": False,
                "description": "The `next` of the previous answer",
                "schema": {"type": "string", "pattern": "^[0-9]{0,19}$"},
            },
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            },
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT},
            },
        ]
    },
)
async def read_events(request: Request, _: StaffEventsRead) -> Response:
    after, limit, wait = _query(request)
    built = services(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    if wait > 0:  # a long poll waits on the database's news, not on a request slot
        admitted: Any = request.scope.get("state", {}).get("admitted")
        if admitted is not None:
            admitted.release()
    while True:
        changed = built.changes.current()  # taken before the read: no change is missed
        page = await built.events.read(after, limit)
        remaining = deadline - loop.time()
        if page.events or remaining <= 0:
            break
        after = page.next
        # Events held back by a running transaction come free when it ends, which nothing
        # signals: while some are held, look again within a second (one read per second per
        # waiting reader, only then).
        pause = min(remaining, UNSETTLED_RECHECK) if built.events.unsettled() else remaining
        await built.changes.wait(changed, pause)
    return JSON({"events": page.events, "next": str(page.next)})
