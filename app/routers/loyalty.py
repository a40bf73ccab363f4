"""Loyalty register contract (seed 003): Django REST framework conventions at /api/v1/loyalty/."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.contract import Problem, _read_limited, render_problem
from app.errors import NotFound
from app.http import JSON, parse_int, wants_html
from app.loyalty.openapi import (
    BAD_REQUEST,
    BODY_DOC,
    ERRORS,
    ITEM_BODY_DOC,
    PATCH_BODY_DOC,
    WRITE_ERRORS,
    LoyaltyMemberOut,
    LoyaltyPage,
    Metadata,
    UpsertResult,
)
from app.loyalty.repository import ListQuery
from app.loyalty.schemas import (
    IS_MALE_PATTERN,
    MAX_LENGTH,
    ORDERING_PATTERN,
    PARSES,
    SEARCH_PATTERN,
    MemberRecord,
    metadata,
    parse_is_male,
    parse_ordering,
    parse_search,
    render_birthday,
    render_discount,
)
from app.loyalty.service import BulkInvalid, LoyaltyService, TooManyItems
from app.routers.loyalty_html import browsable_page
from app.security import StaffLoyaltyRead, StaffLoyaltyWrite

PREFIX = "/api/v1/loyalty"
LIST_ALLOW = "GET, POST, HEAD, OPTIONS"
ITEM_ALLOW = "GET, PUT, DELETE, HEAD, OPTIONS, PATCH"
PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000
# A bulk upload of max_bulk_items members is normal use: its body may exceed the general
# MAX_BODY_BYTES, so the list POST allows this many bytes per item (client_name ≤ 200).
BULK_BYTES_PER_ITEM = 512
FORM_TYPES = PARSES[1:]
WRITES = ("POST", "PUT", "PATCH", "DELETE")
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


def _format(request: Request) -> str | None:
    """`json` or `api` from the suffix, `?format=`, or a browser's Accept; None if unknown."""
    chosen = request.path_params.get("suffix") or request.query_params.get("format")
    if not chosen:
        return "api" if wants_html(request) else "json"
    return chosen if chosen in FORMATS else None


def _list_url(request: Request) -> str:
    return f"{request.base_url}{PREFIX.lstrip('/')}/"


def _item_url(request: Request, loyalty_id: str) -> str:
    return f"{_list_url(request)}{quote(loyalty_id, safe='')}/"


def present(request: Request, r: MemberRecord) -> dict[str, Any]:
    """The representation of a member, with its absolute url."""
    return {
        "url": _item_url(request, r.loyalty_id),
        "loyalty_id": r.loyalty_id,
        "cardno": r.cardno,
        "discount": render_discount(r.discount),
        "client_name": r.client_name,
        "client_birthday": render_birthday(r.client_birthday),
        "is_male": r.is_male,
    }


def _respond(
    request: Request, data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """JSON, or the browsable page when the format is `api` (204 never has a body)."""
    if status == 204:
        return Response(status_code=204, headers=headers, media_type="application/json")
    if _format(request) == "api":
        item = _is_item(request)
        shown = {
            "Allow": ITEM_ALLOW if item else LIST_ALLOW,
            "Content-Type": "application/json",
            "Vary": "Accept",
            **(headers or {}),
        }
        page_url = f"{request.url.path}?{request.url.query}" if request.url.query else None
        key = data.get("loyalty_id") if isinstance(data, dict) else None
        key = key or request.path_params.get("loyalty_id")
        target = _item_url(request, str(key)) if item and key else None
        response: Response = browsable_page(
            title="Loyalty Instance" if item else "Loyalty List",
            method=getattr(request.state, "form_method", None) or request.method,
            path=page_url or request.url.path,
            status=status,
            headers=shown,
            data=data,
            list_url=f"{_list_url(request)}?format=api",
            action=f"{target or _list_url(request)}?format=api",
            item=data if isinstance(data, dict) and "loyalty_id" in data else None,
            is_list=not item,
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
    return _finish(request, _respond(request, body, problem.status))


def _finish(request: Request, response: Response) -> Response:
    """Allow and Vary on every response; HEAD keeps the headers and drops the body."""
    response.headers["Allow"] = ITEM_ALLOW if _is_item(request) else LIST_ALLOW
    response.headers["Vary"] = "Accept"
    if request.method == "HEAD":
        return Response(status_code=response.status_code, headers=dict(response.headers))
    return response


def _error(request: Request, exc: Exception) -> Response:
    match exc:
        case BulkInvalid():
            return _respond(request, exc.errors, 400)
        case TooManyItems():
            return _respond(request, {"non_field_errors": [exc.message]}, 400)
        case BadBody():
            return _respond(request, {"detail": exc.detail}, exc.status)
    return render_problem(request, exc, render)


def _body_limit(request: Request) -> int:
    settings = request.app.state.settings
    limit: int = settings.max_body_bytes
    if request.method == "POST" and not _is_item(request):
        limit = max(limit, settings.max_bulk_items * BULK_BYTES_PER_ITEM)
    return limit


class LoyaltyRoute(APIRoute):
    """Errors in this contract's format, a larger body limit for bulk POSTs, Allow/Vary/HEAD."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                if request.method in WRITES:
                    await _read_limited(request, _body_limit(request))
                if _format(request) is None:
                    raise NotFound("Not found")
                response = await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error gets the contract's shape
                response = _error(request, exc)
            return _finish(request, response)

        return handle


router = APIRouter(tags=["Loyalty register"], route_class=LoyaltyRoute)


async def _service(request: Request) -> LoyaltyService:
    return LoyaltyService(request.app.state.db, request.app.state.settings)


ServiceDep = Annotated[LoyaltyService, Depends(_service)]


def _key(loyalty_id: str) -> str:
    """A path id that could exist; anything else is simply not found."""
    if not loyalty_id or len(loyalty_id) > MAX_LENGTH["loyalty_id"] or "\x00" in loyalty_id:
        raise NotFound("Not found")
    return loyalty_id


# The seed's examples end objects with a trailing comma (`"is_male": false, }`); clients
# copied them, so a body that only fails for that reason is read without those commas.
_TRAILING_COMMA = re.compile(r'("(?:\\.|[^"\\])*")|,(\s*[}\]])')


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            text = body.decode()
            return orjson.loads(_TRAILING_COMMA.sub(lambda m: m[1] or m[2], text))
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            raise BadBody(400, f"JSON parse error - {exc}") from None


async def _payload(request: Request) -> tuple[Any, str | None]:
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
            return (_json(content.encode()) if content.strip() else {}), override
        return data, override
    if media in ("", "application/json") or media.endswith("+json"):
        body = await request.body()
        return (_json(body) if body.strip() else {}), None
    raise BadBody(415, f'Unsupported media type "{media}" in request.')


# ----------------------------------------------------------------------------- list

INVALID_PAGE = {"detail": "Invalid page."}


def documented_query(description: str, alias: str | None = None, **schema: Any) -> Any:
    """A query parameter whose format the OpenAPI states and this contract's parser checks
    (FastAPI would answer its own messages instead of DRF's)."""
    return Query(alias=alias, description=description, json_schema_extra=schema)


def _link(request: Request, number: int) -> str:
    """This URL on another page; parameters sorted as DRF does, `format=json` left out."""
    params = [
        (k, v)
        for k, v in request.query_params.multi_items()
        if k != "page" and not (k == "format" and v == "json")
    ]
    if number > 1:
        params.append(("page", str(number)))
    params.sort(key=lambda kv: kv[0])
    return str(request.url.replace(query=urlencode(params)))


async def list_members(
    request: Request,
    service: ServiceDep,
    _: StaffLoyaltyRead,
    page: Annotated[str | None, Query(description="1-based page number, or `last`")] = None,
    page_size: Annotated[
        str | None, Query(description=f"Default {PAGE_SIZE}, max {MAX_PAGE_SIZE}")
    ] = None,
    is_male: Annotated[
        str | None,
        documented_query(
            "`True` or `False` (also 1/0, any case); `unknown` or blank: no filter",
            pattern=IS_MALE_PATTERN,
        ),
    ] = None,
    search: Annotated[
        str | None,
        documented_query("Substring of client_name or cardno (any case)", pattern=SEARCH_PATTERN),
    ] = None,
    ordering: Annotated[
        str | None,
        documented_query(
            "cardno, client_name, client_birthday, identifier; `-` = descending; comma list",
            pattern=ORDERING_PATTERN,
        ),
    ] = None,
    format_: Annotated[
        str | None,
        documented_query("json or api; blank: by Accept", alias="format", enum=[*FORMATS, ""]),
    ] = None,
) -> Response:
    size = parse_int(page_size, PAGE_SIZE)
    size = PAGE_SIZE if size is None or size < 1 else min(size, MAX_PAGE_SIZE)
    query = ListQuery(
        0, size, parse_search(search), parse_is_male(is_male), parse_ordering(ordering)
    )
    if page == "last":
        total, _rows = await service.page(replace(query, limit=0))
        number: int | None = max(1, -(-total // size))
    else:
        number = parse_int(page, 1)
    if number is None or number < 1:
        return _respond(request, INVALID_PAGE, 404)
    total, records = await service.page(replace(query, offset=(number - 1) * size))
    if number > 1 and not records:
        return _respond(request, INVALID_PAGE, 404)
    data = {
        "count": total,
        "next": _link(request, number + 1) if number * size < total else None,
        "previous": _link(request, number - 1) if number > 1 else None,
        "results": [present(request, r) for r in records],
    }
    return _respond(request, data)


async def create_members(request: Request, service: ServiceDep, _: StaffLoyaltyWrite) -> Response:
    data, _override = await _payload(request)
    if isinstance(data, list):
        counts = await service.upload(data)
        return _respond(request, {"updated": counts.updated, "inserted": counts.inserted}, 201)
    one, key = await service.upload_one(data)
    body = {"updated": one.updated, "inserted": one.inserted}
    return _respond(request, body, 201, {"Location": _item_url(request, key)})


async def list_options(request: Request, _: StaffLoyaltyRead) -> Response:
    return _respond(request, metadata("Loyalty List", "POST"))


async def not_allowed(request: Request) -> Response:
    raise StarletteHTTPException(405)


# ----------------------------------------------------------------------------- one member


async def get_member(
    request: Request, loyalty_id: str, service: ServiceDep, _: StaffLoyaltyRead
) -> Response:
    return _respond(request, present(request, await service.get(_key(loyalty_id))))


async def put_member(
    request: Request, loyalty_id: str, service: ServiceDep, _: StaffLoyaltyWrite
) -> Response:
    data, _override = await _payload(request)
    record = await service.replace(_key(loyalty_id), data, partial=False)
    return _respond(request, present(request, record))


async def patch_member(
    request: Request, loyalty_id: str, service: ServiceDep, _: StaffLoyaltyWrite
) -> Response:
    data, _override = await _payload(request)
    record = await service.replace(_key(loyalty_id), data, partial=True)
    return _respond(request, present(request, record))


async def delete_member(
    request: Request, loyalty_id: str, service: ServiceDep, _: StaffLoyaltyWrite
) -> Response:
    await service.delete(_key(loyalty_id))
    return _respond(request, None, 204)


async def form_to_member(
    request: Request, loyalty_id: str, service: ServiceDep, _: StaffLoyaltyWrite
) -> Response:
    """The browsable page's forms: POST with `_method` PUT, PATCH or DELETE (as in DRF)."""
    data, method = await _payload(request)
    request.state.form_method = method
    key = _key(loyalty_id)
    if method in ("PUT", "PATCH"):
        record = await service.replace(key, data, partial=method == "PATCH")
        return _respond(request, present(request, record))
    if method == "DELETE":
        await service.delete(key)
        if _format(request) == "api":
            return RedirectResponse(f"{_list_url(request)}?format=api", status_code=303)
        return _respond(request, None, 204)
    raise StarletteHTTPException(405)


async def item_options(
    request: Request, loyalty_id: str, service: ServiceDep, _: StaffLoyaltyRead
) -> Response:
    """200 whether or not the member exists, as in DRF: PUT is offered only for one that does."""
    try:
        await service.get(_key(loyalty_id))
    except NotFound:
        return _respond(request, metadata("Loyalty Instance", None))
    return _respond(request, metadata("Loyalty Instance", "PUT"))


# ----------------------------------------------------------------------------- routes

LIST_PATHS = (f"{PREFIX}/", PREFIX, f"{PREFIX}/.{{suffix}}", f"{PREFIX}/.{{suffix}}/")
ITEM_PATHS = tuple(
    f"{PREFIX}/{{loyalty_id}}{tail}" for tail in ("/", "", "/.{suffix}", "/.{suffix}/")
)


# `format=api` (or a browser's Accept) renders any answer, errors too, as the browsable page.
HTML = {"text/html": {"schema": {"type": "string"}}}
HEAD_OK = {"description": "The headers GET would answer, no body"}


def _add(
    paths: tuple[str, ...], endpoint: Callable[..., Any], methods: list[str], **doc: Any
) -> None:
    """A route per spelling of the path (slash or not, `.json`/`.api`); the first is documented."""
    documented = doc.pop("documented", True)
    responses = {
        status: answer
        if status == 204
        else {**answer, "content": {**answer.get("content", {}), **HTML}}
        for status, answer in doc.pop("responses", {}).items()
    }
    for i, path in enumerate(paths):
        router.add_api_route(
            path,
            endpoint,
            methods=methods,
            include_in_schema=documented and i == 0,
            responses=responses,
            **doc,
        )


_add(
    LIST_PATHS,
    list_members,
    ["GET"],
    summary="List loyalty members (search, filter, order, paginate)",
    responses={200: {"model": LoyaltyPage}, **ERRORS, 400: BAD_REQUEST},
)
_add(
    LIST_PATHS,
    list_members,
    ["HEAD"],
    summary="Headers of the list",
    responses={200: HEAD_OK, **ERRORS, 400: BAD_REQUEST},
)
_add(
    LIST_PATHS,
    create_members,
    ["POST"],
    status_code=201,
    summary="Add or replace one member, or a list of up to 10,000 (all or nothing)",
    responses={201: {"model": UpsertResult}, **WRITE_ERRORS},
    openapi_extra=BODY_DOC,
)
_add(
    LIST_PATHS,
    list_options,
    ["OPTIONS"],
    summary="Metadata of the list",
    responses={200: {"model": Metadata}, **ERRORS},
)
_add(LIST_PATHS, not_allowed, ["PUT", "PATCH", "DELETE", "TRACE"], documented=False)
_add(
    ITEM_PATHS,
    get_member,
    ["GET"],
    summary="One member by loyalty_id",
    responses={200: {"model": LoyaltyMemberOut}, **ERRORS},
)
_add(
    ITEM_PATHS,
    get_member,
    ["HEAD"],
    summary="Headers of one member",
    responses={200: HEAD_OK, **ERRORS},
)
_add(
    ITEM_PATHS,
    put_member,
    ["PUT"],
    summary="Replace a member (a new loyalty_id renames it)",
    responses={200: {"model": LoyaltyMemberOut}, **WRITE_ERRORS},
    openapi_extra=ITEM_BODY_DOC,
)
_add(
    ITEM_PATHS,
    patch_member,
    ["PATCH"],
    summary="Change some fields of a member",
    responses={200: {"model": LoyaltyMemberOut}, **WRITE_ERRORS},
    openapi_extra=PATCH_BODY_DOC,
)
_add(
    ITEM_PATHS,
    delete_member,
    ["DELETE"],
    status_code=204,
    summary="Delete a member",
    responses={204: {"description": "Deleted"}, **ERRORS},
)
_add(
    ITEM_PATHS,
    item_options,
    ["OPTIONS"],
    summary="Metadata of one member",
    responses={200: {"model": Metadata}, **ERRORS},
)
_add(ITEM_PATHS, form_to_member, ["POST"], documented=False)
_add(ITEM_PATHS, not_allowed, ["TRACE"], documented=False)
