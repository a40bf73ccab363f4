"""Loyalty register contract (seed 003): Django REST framework conventions at /api/v1/loyalty/."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.auth.dependencies import StaffLoyaltyRead, StaffLoyaltyWrite
from app.contracts.deps import services
from app.contracts.http import INVALID_PAGE, clamp_page_size, page_number
from app.contracts.loyalty.http import (
    FORMATS,
    PREFIX,
    LoyaltyRoute,
    item_url,
    list_url,
    member_key,
    present,
    read_payload,
    respond,
    response_format,
)
from app.contracts.loyalty.openapi import (
    BAD_REQUEST,
    BODY_DOC,
    ERRORS,
    IDEMPOTENCY_ERRORS,
    ITEM_BODY_DOC,
    PATCH_BODY_DOC,
    WRITE_ERRORS,
    LoyaltyMemberOut,
    LoyaltyPage,
    Metadata,
    UpsertResult,
)
from app.contracts.loyalty.options import metadata
from app.contracts.loyalty.query import (
    IS_MALE_PATTERN,
    ORDERING_PATTERN,
    SEARCH_MAX,
    SEARCH_PATTERN,
    parse_is_male,
    parse_ordering,
    parse_search,
)
from app.errors import NotFound
from app.idempotency.guard import IdempotencyKeyHeader
from app.loyalty.repository import ListQuery
from app.loyalty.service import LoyaltyService

PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000

router = APIRouter(tags=["Loyalty register"], route_class=LoyaltyRoute)


async def _service(request: Request) -> LoyaltyService:
    return services(request).loyalty


ServiceDep = Annotated[LoyaltyService, Depends(_service)]


# ----------------------------------------------------------------------------- list


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
        documented_query(
            "Substring of client_name or cardno (any case)",
            pattern=SEARCH_PATTERN,
            maxLength=SEARCH_MAX,
        ),
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
    size = clamp_page_size(page_size, PAGE_SIZE, MAX_PAGE_SIZE)
    query = ListQuery(
        0, size, parse_search(search), parse_is_male(is_male), parse_ordering(ordering)
    )
    if page == "last":
        total, _rows = await service.page(replace(query, limit=0))
        number: int | None = max(1, -(-total // size))
    else:
        number = page_number(page)
    if number is None:
        return respond(request, INVALID_PAGE, 404)
    total, records = await service.page(replace(query, offset=(number - 1) * size))
    if number > 1 and not records:
        return respond(request, INVALID_PAGE, 404)
    data = {
        "count": total,
        "next": _link(request, number + 1) if number * size < total else None,
        "previous": _link(request, number - 1) if number > 1 else None,
        "results": [present(request, r) for r in records],
    }
    return respond(request, data)


async def create_members(
    request: Request,
    service: ServiceDep,
    principal: StaffLoyaltyWrite,
    _key: IdempotencyKeyHeader = None,
) -> Response:
    data, _override = await read_payload(request)
    if isinstance(data, list):
        counts = await service.upload(data, actor=principal.actor)
        return respond(request, {"updated": counts.updated, "inserted": counts.inserted}, 201)
    one, key = await service.upload_one(data, actor=principal.actor)
    body = {"updated": one.updated, "inserted": one.inserted}
    return respond(request, body, 201, {"Location": item_url(request, key)})


async def list_options(request: Request, _: StaffLoyaltyRead) -> Response:
    return respond(request, metadata("Loyalty List", "POST"))


async def not_allowed(request: Request) -> Response:
    raise StarletteHTTPException(405)


# ----------------------------------------------------------------------------- one member


async def get_member(
    request: Request, loyalty_id: str, service: ServiceDep, _: StaffLoyaltyRead
) -> Response:
    return respond(request, present(request, await service.get(member_key(loyalty_id))))


async def put_member(
    request: Request, loyalty_id: str, service: ServiceDep, principal: StaffLoyaltyWrite
) -> Response:
    data, _override = await read_payload(request)
    record = await service.replace(
        member_key(loyalty_id), data, partial=False, actor=principal.actor
    )
    return respond(request, present(request, record))


async def patch_member(
    request: Request, loyalty_id: str, service: ServiceDep, principal: StaffLoyaltyWrite
) -> Response:
    data, _override = await read_payload(request)
    record = await service.replace(
        member_key(loyalty_id), data, partial=True, actor=principal.actor
    )
    return respond(request, present(request, record))


async def delete_member(
    request: Request, loyalty_id: str, service: ServiceDep, principal: StaffLoyaltyWrite
) -> Response:
    await service.delete(member_key(loyalty_id), actor=principal.actor)
    return respond(request, None, 204)


async def form_to_member(
    request: Request, loyalty_id: str, service: ServiceDep, principal: StaffLoyaltyWrite
) -> Response:
    """The browsable page's forms: POST with `_method` PUT, PATCH or DELETE (as in DRF)."""
    data, method = await read_payload(request)
    request.state.form_method = method
    key = member_key(loyalty_id)
    if method in ("PUT", "PATCH"):
        record = await service.replace(key, data, partial=method == "PATCH", actor=principal.actor)
        return respond(request, present(request, record))
    if method == "DELETE":
        await service.delete(key, actor=principal.actor)
        if response_format(request) == "api":
            return RedirectResponse(f"{list_url(request)}?format=api", status_code=303)
        return respond(request, None, 204)
    raise StarletteHTTPException(405)


async def item_options(
    request: Request, loyalty_id: str, service: ServiceDep, _: StaffLoyaltyRead
) -> Response:
    """200 whether or not the member exists, as in DRF: PUT is offered only for one that does."""
    try:
        await service.get(member_key(loyalty_id))
    except NotFound:
        return respond(request, metadata("Loyalty Instance", None))
    return respond(request, metadata("Loyalty Instance", "PUT"))


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
    responses={201: {"model": UpsertResult}, **WRITE_ERRORS, **IDEMPOTENCY_ERRORS},
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
