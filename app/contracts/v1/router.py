"""Customer Management API v1 (seed 002): camelCase, nested address, `{"success","status","data"}`.

A thin adapter: it maps v1 names onto store fields, checks the one rule of its own (names of
1–30 characters), and leaves every other rule to the core (`CustomerService` → `clean_changes`).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import Response

from app.auth.dependencies import StaffCustomersRead, StaffCustomersWrite
from app.contracts.deps import CustomersDep, services
from app.contracts.http import JSON, parse_int
from app.contracts.routing import NON_FIELD, Problem, contract_route
from app.contracts.v1 import translate
from app.contracts.v1.query import (
    IF_NONE_MATCH,
    LIST_PARAMETERS,
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    filter_list,
    filter_text,
    filters_length,
    page_number,
    sort,
    timestamp,
    unknown_parameters,
)
from app.contracts.v1.schemas import (
    V1Customer,
    V1CustomerEnvelope,
    V1CustomerIn,
    V1PageEnvelope,
    envelope_errors,
)
from app.contracts.v1.translate import ADDRESS, FIELDS, NAME_FIELDS, NAME_MAX
from app.customers import search
from app.errors import Invalid, Message, PreconditionFailed, code_of
from app.idempotency.guard import IdempotencyKeyHeader
from app.ids import customer_id_or_404

PREFIX = "/api/v1/customers"

V1_NAME = {store: v1 for v1, store in FIELDS.items()} | {
    store: f"address.{v1}" for v1, store in ADDRESS.items()
}
# Messages are listed in the order of the representation, whoever found them.
_STORE_ORDER = [*FIELDS.values(), "address", *ADDRESS.values()]
_ORDER = {n: i for i, s in enumerate(_STORE_ORDER) for n in (s, V1_NAME.get(s, s))}

# ---------------------------------------------------------------- errors

STATUS_MESSAGES = {
    403: "You do not have permission to perform this action",
    404: "Resource could not be located",
    405: "Method not allowed",
    412: "The customer has changed since the ETag you sent; fetch it again",
    500: "An internal server error has occured processing your request",  # sic, as documented
}
# Core (and request-parsing) messages → this contract's phrasing after the quoted field name.
# The core's messages in this contract's words, by code (the core's text is never matched).
PHRASES = {
    "required": "is required",
    "blank": "must not be blank",
    "not_string": "must be a string",
    "control_characters": "must not contain control characters",
    "invalid_email": "must be a valid email address",
    "invalid_phone": "must be a valid phone number",
    "invalid_date": "must be a date in the format YYYY-MM-DD",
    "date_in_future": "must not be in the future",
    "date_too_early": "must not be before 1900-01-01",
    "invalid_country": "must be an ISO 3166-1 country code or English country name",
    "not_object": "must be an object",
    "unknown_field": "is not a known field",
}
_NAME_RANGE = f"must be between 1 and {NAME_MAX} characters"


def _phrase(field: str, text: str) -> str | None:
    """This contract's words for one message about `field` (they follow the field's name),
    or None where the message keeps its own text."""
    code = code_of(text)
    name = V1_NAME.get(field, field)
    if field in NAME_FIELDS or FIELDS.get(name) in NAME_FIELDS:
        if code in ("too_long", "required", "blank"):
            return _NAME_RANGE
    if code == "too_long" and isinstance(text, Message):
        return f"must be at most {text.params['max_length']} characters"
    if code in PHRASES:
        return PHRASES[code]
    if text[:1].islower():  # already phrased by this contract
        return text
    return None


def _message(field: str, text: str) -> str:
    """One 400 message in the seed's style: `'firstName' must be between 1 and 30 characters`."""
    if field == NON_FIELD:
        code = code_of(text)
        if code == "required":
            return "A JSON object is required as the request body"
        if code in PHRASES:
            return "The request body must be a JSON object sent as application/json"
        return text
    name = V1_NAME.get(field, field)
    phrase = _phrase(field, text)
    return f"'{name}' {phrase}" if phrase is not None else f"'{name}': {text}"


def _fields(problem: Problem) -> dict[str, list[str]]:
    """The same messages keyed by v1 name, for a form to show beside each field (`data.fields`,
    added to the seed's envelope); whole-body messages stay in `error` only."""
    out: dict[str, list[str]] = {}
    for field, texts in problem.fields.items():
        if field == NON_FIELD:
            continue
        for text in texts:
            phrase = _phrase(field, text) or text
            out.setdefault(V1_NAME.get(field, field), []).append(phrase[:1].upper() + phrase[1:])
    return out


def render(request: Request, problem: Problem) -> Response:
    """Errors in the v1 envelope; a 401 stays plain (`{"detail"}`), as the seed has it."""
    if problem.status == 401:
        return JSON({"detail": problem.message}, status_code=401)
    error: str | list[str]
    if problem.status == 400:
        fields = sorted(problem.fields.items(), key=lambda item: _ORDER.get(item[0], len(_ORDER)))
        error = [_message(name, text) for name, texts in fields for text in texts] or [
            problem.message
        ]
    else:
        error = STATUS_MESSAGES.get(problem.status) or problem.message
    data: dict[str, Any] = {"error": error, "request": request.url.path, "method": request.method}
    if problem.status == 400 or problem.fields:
        data["fields"] = _fields(problem)
    body = {"success": False, "status": problem.status, "data": data}
    return JSON(body, status_code=problem.status)


router = APIRouter(tags=["Customer Management API v1"], route_class=contract_route(render))

CustomerUlid = Annotated[
    str, Path(description="The customer's ULID", examples=["01HWJ8WH9X8WBK65EMGY9YKPBS"])
]
IfMatch = Annotated[
    str | None,
    Header(description="ETag from a GET; the write happens only if it is still current"),
]


# ---------------------------------------------------------------- routes


@router.get(
    PREFIX,
    response_model=V1PageEnvelope,
    responses=envelope_errors(400),
    summary="List customers: filter, sort and page",
    openapi_extra={"parameters": LIST_PARAMETERS},
)
async def list_customers(request: Request, _: StaffCustomersRead) -> Response:
    # Every parameter is an optional string that the parsers below check themselves, so
    # they are read straight from the query string (documented by LIST_PARAMETERS):
    # FastAPI's per-parameter handling of ten of them was a tenth of the request.
    q = request.query_params
    first_name, last_name = q.get("firstName"), q.get("lastName")
    line1, line2 = q.get("address.streetLine1"), q.get("address.streetLine2")
    city, post_code = q.get("address.city"), q.get("address.postCode")
    last_updated, sort_by = q.get("lastUpdated"), q.get("sortBy")
    page_no, page_size = q.get("pageNo"), q.get("pageSize")
    errors: dict[str, list[str]] = {}
    number, size = page_number(page_no), parse_int(page_size, PAGE_SIZE)
    if number is None or number < 0:
        errors["pageNo"] = ["must be a whole number, 0 or more"]
    if size is None or not 1 <= size <= MAX_PAGE_SIZE:
        errors["pageSize"] = [f"must be a whole number between 1 and {MAX_PAGE_SIZE}"]
    filters_length(
        errors,
        {"firstName": first_name, "lastName": last_name, "line1": line1, "line2": line2}
        | {"city": city, "postCode": post_code},
    )
    criteria = search.CustomerFilter(
        first_name=filter_text(errors, "firstName", first_name),
        last_name=filter_text(errors, "lastName", last_name),
        address_line1=filter_list(errors, "address.streetLine1", line1),
        address_line2=filter_list(errors, "address.streetLine2", line2),
        address_city=filter_list(errors, "address.city", city),
        address_post_code=filter_list(errors, "address.postCode", post_code),
        updated_since=timestamp(errors, last_updated),
    )
    order = sort(errors, sort_by)
    unknown_parameters(errors, list(q.keys()))
    if errors or number is None or size is None:
        raise Invalid(errors)
    found = await services(request).customers.find(criteria, order, number * size, size)
    pages = -(-found.total // size)
    data = {
        "pageSize": size,
        "pageNo": number,
        "totalPages": pages,
        "first": number == 0,
        "last": number >= pages - 1,
        "totalElements": found.total,
        "customers": [translate.present(c) for c in found.customers],
    }
    return JSON({"success": True, "status": 200, "data": data})


@router.post(
    PREFIX,
    status_code=201,
    response_model=V1CustomerEnvelope,
    responses=envelope_errors(400, 409, 413, 422),
    summary="Create a customer",
)
async def create_customer(
    request: Request,
    body: V1CustomerIn,
    customers: CustomersDep,
    principal: StaffCustomersWrite,
    _key: IdempotencyKeyHeader = None,
) -> Response:
    changes = {k: v for k, v in translate.replacement(body).items() if v is not None}
    translate.check_names(changes, customers, creating=True)
    record = await customers.create(changes, actor=principal.actor)
    response = translate.resource(record, 201, envelope=True)
    response.headers["Content-Location"] = (
        f"{request.scope.get('root_path', '')}{PREFIX}/{record.ulid}"
    )
    return response


@router.get(
    PREFIX + "/{customer_id}",
    response_model=V1Customer,
    responses={
        **envelope_errors(404),
        304: {"description": "Not modified: empty body, `Cache-Control: max-age=0`"},
    },
    summary="Get one customer (with an ETag)",
    openapi_extra={"parameters": [IF_NONE_MATCH]},
)
async def get_customer(
    request: Request, customer_id: CustomerUlid, _: StaffCustomersRead
) -> Response:
    # The hottest route: the service and If-None-Match are read from the request rather
    # than through two more FastAPI dependencies (~14 µs each).
    record = await services(request).customers.get(customer_id_or_404(customer_id))
    if translate.not_modified(request.headers.get("if-none-match"), record):
        return Response(
            status_code=304, headers={"ETag": record.etag, "Cache-Control": "max-age=0"}
        )
    return translate.resource(record)


async def _update(
    customer_id: str,
    changes: dict[str, Any],
    if_match: str | None,
    customers: CustomersDep,
    actor: str,
) -> Response:
    uid = customer_id_or_404(customer_id)
    translate.check_names(changes, customers)
    expected = await translate.expected_version(if_match, uid, customers)
    if not changes:  # an empty merge patch changes nothing, not even the ETag
        record = await customers.get(uid)
        if expected is not None and record.version != expected:
            raise PreconditionFailed()
        return translate.resource(record)
    return translate.resource(await customers.update(uid, changes, expected, actor=actor))


@router.put(
    PREFIX + "/{customer_id}",
    response_model=V1Customer,
    responses=envelope_errors(400, 404, 409, 412, 413),
    summary="Replace a customer (fields left out are cleared)",
)
async def replace_customer(
    customer_id: CustomerUlid,
    body: V1CustomerIn,
    customers: CustomersDep,
    principal: StaffCustomersWrite,
    if_match: IfMatch = None,
) -> Response:
    changes = translate.replacement(body)
    return await _update(customer_id, changes, if_match, customers, principal.actor)


@router.patch(
    PREFIX + "/{customer_id}",
    response_model=V1Customer,
    responses=envelope_errors(400, 404, 409, 412, 413),
    summary="Change some fields (JSON merge patch: address merged, null clears)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/merge-patch+json": {
                    "schema": {"$ref": "#/components/schemas/V1CustomerIn"},
                    "example": {"address": {"postCode": "2145"}},
                }
            }
        }
    },
)
async def patch_customer(
    customer_id: CustomerUlid,
    body: V1CustomerIn,
    customers: CustomersDep,
    principal: StaffCustomersWrite,
    if_match: IfMatch = None,
) -> Response:
    changes = translate.merge_patch(body)
    return await _update(customer_id, changes, if_match, customers, principal.actor)


@router.delete(
    PREFIX + "/{customer_id}",
    status_code=204,
    response_class=Response,
    responses={**envelope_errors(404, 412), 204: {"description": "Deleted; no body"}},
    summary="Delete a customer and all of their data",
)
async def delete_customer(
    customer_id: CustomerUlid,
    customers: CustomersDep,
    principal: StaffCustomersWrite,
    if_match: IfMatch = None,
) -> Response:
    uid = customer_id_or_404(customer_id)
    expected = await translate.expected_version(if_match, uid, customers)
    await customers.delete(uid, actor=principal.actor, expected_version=expected)
    return Response(status_code=204)
