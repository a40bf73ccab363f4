"""Jambo customers contract (seeds 000/001): snake_case, `{"statusCode","body"}` envelope."""

import html
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.auth.dependencies import (
    CustomerPrincipal,
    StaffCustomersRead,
    StaffCustomersWrite,
    staff_or_self,
)
from app.auth.tokens import Principal
from app.contracts.deps import CustomersDep, DeletionDep, ExportDep, services
from app.contracts.http import (
    INVALID_PAGE,
    JSON,
    attachment,
    clamp_page_size,
    page_number,
    wants_html,
)
from app.contracts.jambo.schemas import (
    ERRORS,
    CustomerEnvelope,
    CustomerIn,
    CustomerList,
    DeletionRequest,
    JamboDetail,
    MessageEnvelope,
    changes_of,
    ok,
    present,
)
from app.contracts.routing import Problem, contract_route
from app.errors import NotFound
from app.idempotency.guard import IdempotencyKeyHeader
from app.ids import customer_id_or_404, parse_ulid
from app.privacy.export import CustomerExport, filename


def render(request: Request, problem: Problem) -> Response:
    """Errors in the Jambo envelope: a message, or `{"field": [messages]}`."""
    body: Any = problem.message
    if problem.fields:
        body = problem.fields
    return JSON({"statusCode": problem.status, "body": body}, status_code=problem.status)


router = APIRouter(tags=["Jambo customers"], route_class=contract_route(render))

PAGE_SIZE, MAX_PAGE_SIZE = 20, 100


CustomerUlid = Annotated[
    str, Path(description="The customer's ULID", examples=["01HWJ8WH9X8WBK65EMGY9YKPBS"])
]
SelfOrStaffRead = Annotated[Principal, Depends(staff_or_self("customers:read"))]


@router.post(
    "/api/customers",
    status_code=201,
    response_model=CustomerEnvelope,
    responses={
        **ERRORS,
        409: {
            "model": MessageEnvelope,
            "description": "Email already used, or a request with this Idempotency-Key is "
            "still running",
        },
        422: {
            "model": MessageEnvelope,
            "description": "This Idempotency-Key was used with another request body",
        },
    },
    summary="Add a customer",
)
async def create_customer(
    body: CustomerIn,
    customers: CustomersDep,
    principal: StaffCustomersWrite,
    _key: IdempotencyKeyHeader = None,
) -> Response:
    record = await customers.create(changes_of(body), actor=principal.actor)
    return ok(present(record), 201)


@router.get(
    "/api/customers",
    response_model=CustomerList,
    responses={**ERRORS, 404: {"model": JamboDetail, "description": "`page` is past the end"}},
    summary="List customers",
)
async def list_customers(
    request: Request,
    _: StaffCustomersRead,
    page: Annotated[str | None, Query(description="1-based page number")] = None,
    page_size: Annotated[
        str | None, Query(description=f"Default {PAGE_SIZE}, max {MAX_PAGE_SIZE}")
    ] = None,
) -> Response:
    number = page_number(page)
    size = clamp_page_size(page_size, PAGE_SIZE, MAX_PAGE_SIZE)
    if number is None:
        return JSON(INVALID_PAGE, status_code=404)
    total, records = await services(request).customers.page((number - 1) * size, size)
    if not records and number > 1:
        return JSON(INVALID_PAGE, status_code=404)

    def link(n: int) -> str:
        return str(request.url.include_query_params(page=n, page_size=size))

    return JSON(
        {
            "count": total,
            "next": link(number + 1) if number * size < total else None,
            "previous": link(number - 1) if number > 1 else None,
            "results": {"statusCode": 200, "body": [present(r) for r in records]},
        }
    )


@router.put(
    "/api/customers",
    response_model=CustomerEnvelope,
    responses={**ERRORS, 409: {"model": MessageEnvelope, "description": "Email already used"}},
    summary="Edit the calling customer's own record",
    description="A new `email` becomes the sign-in address only once the code mailed to it "
    "is entered (`POST /api/v3/customer/email/confirm/`); until then the answer shows the "
    "current one, and the old address is told of the change. Whether the new address is "
    "already registered is never answered.",
)
async def update_self(
    body: CustomerIn, customers: CustomersDep, principal: CustomerPrincipal
) -> Response:
    own = await customers.for_token(principal.sub)
    # A new e-mail address is pending until the code mailed to it is entered (POST
    # /api/v3/customer/email/confirm/): the answer shows the address still in force.
    saved = await customers.update_own(own, changes_of(body), actor=principal.actor)
    return ok(present(saved.record))


@router.get(
    "/api/customer/{customer_ulid}",
    response_model=CustomerEnvelope,
    responses=ERRORS,
    summary="Get a customer (staff, or the customer themself)",
)
async def get_customer(
    request: Request, customer_ulid: CustomerUlid, principal: SelfOrStaffRead
) -> Response:
    customers = services(request).customers  # a hot read: one dependency fewer
    if principal.is_customer:
        own = await customers.for_token(principal.sub)
        if own.ulid != customer_ulid.upper():
            raise NotFound("Customer not found.")  # existence of others is not revealed
        return ok(present(own))
    return ok(present(await customers.get(customer_id_or_404(customer_ulid))))


@router.get(
    "/api/customer/{customer_ulid}/export",
    response_model=CustomerExport,
    responses={
        **ERRORS,
        200: {
            "description": "Everything held about the customer, as a JSON attachment "
            "(`Content-Disposition: attachment`). Not enveloped: the file is the same "
            "document `GET /api/v3/customer/export/` gives.",
        },
    },
    summary="Export everything held about a customer (staff, or the customer themself)",
)
async def export_customer(
    request: Request, customer_ulid: CustomerUlid, exports: ExportDep, principal: SelfOrStaffRead
) -> Response:
    if principal.is_customer:
        own = await services(request).customers.for_token(principal.sub)
        if own.ulid != customer_ulid.upper():
            raise NotFound("Customer not found.")  # existence of others is not revealed
    customer_id = customer_id_or_404(customer_ulid)
    document = await exports.export(customer_id)
    return attachment(document, filename(document["customer"]["id"]))


@router.put(
    "/api/customer/{customer_ulid}",
    response_model=CustomerEnvelope,
    responses={**ERRORS, 409: {"model": MessageEnvelope, "description": "Email already used"}},
    summary="Edit a customer (staff)",
)
async def update_customer(
    customer_ulid: CustomerUlid,
    body: CustomerIn,
    customers: CustomersDep,
    principal: StaffCustomersWrite,
) -> Response:
    uid = customer_id_or_404(customer_ulid)
    record = await customers.update(uid, changes_of(body), actor=principal.actor)
    return ok(present(record))


@router.delete(
    "/api/customer/{customer_ulid}",
    response_model=MessageEnvelope,
    responses=ERRORS,
    summary="Delete a customer (staff)",
)
async def delete_customer(
    customer_ulid: CustomerUlid, customers: CustomersDep, principal: StaffCustomersWrite
) -> Response:
    await customers.delete(customer_id_or_404(customer_ulid), actor=principal.actor)
    return JSON({"statusCode": 204})


@router.post(
    "/api/customer/{customer_ulid}/delete/request",
    response_model=MessageEnvelope,
    responses={**ERRORS, 503: {"model": MessageEnvelope, "description": "Mail server down"}},
    summary="Ask for a data-deletion link by email (the customer themself)",
)
async def request_deletion(
    customer_ulid: CustomerUlid,
    body: DeletionRequest,
    deletion: DeletionDep,
    principal: CustomerPrincipal,
) -> Response:
    customer_id = parse_ulid(customer_ulid)
    if customer_id is None or principal.sub.upper() != customer_ulid.upper():
        return ok("Customer Not Found or is Invalid", 400)
    try:
        await deletion.request(customer_id, body.origin)
    except NotFound:
        return ok("Customer Not Found or is Invalid", 400)
    return ok("Data deletion link sent successfully")


_NO_TOKEN = {"detail": "No Token matches the given query."}


def _page(title: str, inner: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{title}</title></head>"
        f"<body style='font-family:sans-serif;max-width:36em;margin:3em auto'><h1>{title}</h1>"
        f"{inner}</body></html>",
        status_code=status,
        # Nothing runs, nothing loads, nothing frames it; the token in its URL is never
        # sent on as a Referer.
        headers={"Content-Security-Policy": _PAGE_CSP, "Referrer-Policy": "no-referrer"},
    )


_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def _json_only(request: Request) -> bool:
    """Whether the client asked for JSON and nothing else: only such a client deletes on GET.
    Browsers, link previews and mail scanners send `*/*`, `text/html…` or no Accept."""
    return request.headers.get("accept", "").strip().lower() == "application/json"


@router.get(
    "/api/customer/{token}/delete/confirm",
    response_model=MessageEnvelope,
    responses={
        404: {"model": JamboDetail, "description": "Bad, expired or used token"},
        200: {"content": {"text/html": {}}},
    },
    summary="Follow the deletion link: JSON clients delete; browsers get a confirm page",
    description="Deletes only with `Accept: application/json` exactly. Every other GET (and "
    "HEAD) gets an HTML page whose button POSTs to this URL; it deletes nothing.",
)
async def confirm_deletion_link(request: Request, token: str, deletion: DeletionDep) -> Response:
    if request.method == "GET" and _json_only(request):
        return await _confirm(request, token, deletion)
    if not await deletion.is_live(token):
        return JSON(_NO_TOKEN, status_code=404)
    # Mail scanners pre-fetch links: anything but a JSON client only sees the button.
    return _page(
        "Delete your data?",
        "<p>This permanently deletes your account and all personal data we hold about you.</p>"
        f"<form method=post action='{html.escape(str(request.url.path))}'>"
        "<button type=submit>Delete my data</button></form>",
    )


# HEAD (link checkers) gets the page's headers and never deletes; kept out of the document.
router.add_api_route(
    "/api/customer/{token}/delete/confirm",
    confirm_deletion_link,
    methods=["HEAD"],
    include_in_schema=False,
)


@router.post(
    "/api/customer/{token}/delete/confirm",
    response_model=MessageEnvelope,
    responses={404: {"model": JamboDetail, "description": "Bad, expired or used token"}},
    summary="Confirm the deletion (the link's page posts here)",
)
async def confirm_deletion(request: Request, token: str, deletion: DeletionDep) -> Response:
    return await _confirm(request, token, deletion)


async def _confirm(request: Request, token: str, deletion: DeletionDep) -> Response:
    try:
        await deletion.confirm(token)
    except NotFound:
        return JSON(_NO_TOKEN, status_code=404)
    request.state.wrote = True  # a GET that erased: the change feed's readers are woken
    if wants_html(request):
        return _page("Your data has been deleted", "<p>Customer deleted successfully.</p>")
    return ok("Customer deleted successfully")
