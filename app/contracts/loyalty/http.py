"""The loyalty register's HTTP conventions (seed 003, Django REST framework's): formats and
the browsable page, DRF's error bodies, Allow/Vary/HEAD on every answer, body parsing."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from fastapi import Request
from fastapi.responses import Response

from app.bodies import OFF_LOOP_BYTES, run_off_loop_if, strip_trailing_commas
from app.config import Settings
from app.contracts.http import JSON, wants_html
from app.contracts.loyalty.html import Submitted, browsable_page
from app.contracts.routing import (
    Problem,
    contract_route,
)
from app.errors import NotFound
from app.loyalty.schemas import (
    MAX_LENGTH,
    PARSES,
    MemberRecord,
    render_birthday,
    render_discount,
)
from app.loyalty.service import BulkInvalid, TooManyItems

PREFIX = "/api/v1/loyalty"
LIST_ALLOW = "GET, POST, HEAD, OPTIONS"
ITEM_ALLOW = "GET, PUT, DELETE, HEAD, OPTIONS, PATCH"
# A bulk upload of max_bulk_items members is normal use: its body may exceed the general
# MAX_BODY_BYTES, so the list POST allows this many bytes per item (client_name ≤ 200).
BULK_BYTES_PER_ITEM = 512
FORM_TYPES = PARSES[1:]
FORMATS = ("json", "api")


class BadBody(Exception):
    """A body that cannot be parsed at all (DRF's ParseError / UnsupportedMediaType)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _is_item(request: Request) -> bool:
    if "loyalty_id" in request.path_params:
        return True
    _, _, rest = request.scope.get("path", "").partition(PREFIX)
    return any(part and not part.startswith(".") for part in rest.split("/"))


def response_format(request: Request) -> str | None:
    """`json` or `api` from the suffix, `?format=`, or a browser's Accept; None if unknown."""
    chosen = request.path_params.get("suffix") or request.query_params.get("format")
    if not chosen:
        return "api" if wants_html(request) else "json"
    return chosen if chosen in FORMATS else None


def list_url(request: Request) -> str:
    return f"{request.base_url}{PREFIX.lstrip('/')}/"


def item_url(request: Request, loyalty_id: str) -> str:
    return f"{list_url(request)}{quote(loyalty_id, safe='')}/"


def present(request: Request, r: MemberRecord) -> dict[str, Any]:
    """The representation of a member, with its absolute url."""
    return {
        "url": item_url(request, r.loyalty_id),
        "loyalty_id": r.loyalty_id,
        "cardno": r.cardno,
        "discount": render_discount(r.discount),
        "client_name": r.client_name,
        "client_birthday": render_birthday(r.client_birthday),
        "is_male": r.is_male,
    }


def respond(
    request: Request, data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """JSON, or the browsable page when the format is `api` (204 never has a body)."""
    if status == 204:
        return Response(status_code=204, headers=headers, media_type="application/json")
    if response_format(request) == "api":
        item = _is_item(request)
        shown = {
            "Allow": ITEM_ALLOW if item else LIST_ALLOW,
            "Content-Type": "application/json",
            "Vary": "Accept",
            **(headers or {}),
        }
        page_url = f"{request.url.path}?{request.url.query}" if request.url.query else None
        # The member shown (a rename moves the forms to its new URL), or the one asked for;
        # never a refused body's `loyalty_id`, which holds messages.
        member = data if status < 400 and isinstance(data, dict) and "loyalty_id" in data else None
        key = (member or {}).get("loyalty_id") or request.path_params.get("loyalty_id")
        target = item_url(request, str(key)) if item and key else None
        response: Response = browsable_page(
            title="Loyalty Instance" if item else "Loyalty List",
            method=getattr(request.state, "form_method", None) or request.method,
            path=page_url or request.url.path,
            status=status,
            headers=shown,
            data=data,
            list_url=f"{list_url(request)}?format=api",
            action=f"{target or list_url(request)}?format=api",
            item=member,
            is_list=not item,
            submitted=getattr(request.state, "submitted", None),
        )
        response.headers.update(headers or {})
        return response
    return JSON(data, status_code=status, headers=headers)


def render(request: Request, problem: Problem) -> Response:
    """Errors as DRF writes them: `{"detail": …}` or `{"field": ["message"]}`."""
    body: dict[str, Any]
    if problem.fields:
        body = dict(problem.fields)
    elif problem.status == 404:
        body = {"detail": "Not found"}
    elif problem.status == 405:
        body = {"detail": f'Method "{request.method}" not allowed.'}
    else:
        body = {"detail": problem.message}
    return _finish(request, respond(request, body, problem.status))


def _finish(request: Request, response: Response) -> Response:
    """Allow and Vary on every response; HEAD keeps the headers and drops the body."""
    response.headers["Allow"] = ITEM_ALLOW if _is_item(request) else LIST_ALLOW
    response.headers["Vary"] = "Accept"
    if request.method == "HEAD":
        return Response(status_code=response.status_code, headers=dict(response.headers))
    return response


def _error(request: Request, exc: Exception) -> Response | None:
    """This contract's own errors: DRF's shapes for bulk uploads and unreadable bodies."""
    match exc:
        case BulkInvalid():
            return respond(request, exc.errors, 400)
        case TooManyItems():
            return respond(request, {"non_field_errors": [exc.message]}, 400)
        case BadBody():
            return respond(request, {"detail": exc.detail}, exc.status)
    return None


def bulk_body_limit(settings: Settings) -> int:
    """The bytes a bulk upload may send: max_bulk_items items of BULK_BYTES_PER_ITEM."""
    return settings.max_bulk_items * BULK_BYTES_PER_ITEM


def _body_limit(request: Request) -> int:
    settings = request.app.state.settings
    limit: int = settings.max_body_bytes
    if request.method == "POST" and not _is_item(request):
        limit = max(limit, bulk_body_limit(settings))
    return limit


def _admit(request: Request) -> None:
    if response_format(request) is None:
        raise NotFound("Not found")


LoyaltyRoute = contract_route(
    render, body_limit=_body_limit, admit=_admit, own_errors=_error, finish=_finish
)


def member_key(loyalty_id: str) -> str:
    """A path id that could exist; anything else is simply not found."""
    if not loyalty_id or len(loyalty_id) > MAX_LENGTH["loyalty_id"] or "\x00" in loyalty_id:
        raise NotFound("Not found")
    return loyalty_id


# The seed's examples end objects with a trailing comma (`"is_male": false, }`); clients
# copied them, so a body that only fails for that reason is read without those commas.
def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            text = body.decode()
            return orjson.loads(strip_trailing_commas(text))
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            raise BadBody(400, f"JSON parse error - {exc}") from None


async def read_payload(request: Request) -> tuple[Any, str | None]:
    """The parsed body (JSON, or one item from a form) and a browser form's `_method`."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in FORM_TYPES:
        try:
            form = await request.form()
        except Exception:  # noqa: BLE001 - any malformed form is the client's error
            raise BadBody(400, "Malformed form data.") from None
        data: dict[str, Any] = dict(form.multi_items())  # a repeated field: the last wins
        override = data.pop("_method", None)
        override = override.upper() if isinstance(override, str) else None
        if "_content" in data:  # the browsable page's raw-JSON form, as in DRF
            content, kind = data.pop("_content"), data.pop("_content_type", "application/json")
            if not isinstance(content, str) or kind != "application/json":
                raise BadBody(415, f'Unsupported media type "{kind}" in request.')
            request.state.submitted = Submitted(raw=content)  # shown again if refused
            if not content.strip():
                return {}, override
            raw = content.encode()
            return await run_off_loop_if(len(raw) > OFF_LOOP_BYTES, _json, raw), override
        request.state.submitted = Submitted(values=data)
        return data, override
    if media in ("", "application/json") or media.endswith("+json"):
        body = await request.body()
        if not body.strip():
            return {}, None
        return await run_off_loop_if(len(body) > OFF_LOOP_BYTES, _json, body), None
    raise BadBody(415, f'Unsupported media type "{media}" in request.')
