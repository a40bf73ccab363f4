"""Customer API v3 (seed 004), self-service: the current customer and the update form."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.config import Settings
from app.contracts.deps import CustomersDep, ExportDep, SettingsDep
from app.contracts.http import JSON, attachment
from app.contracts.routing import contract_route
from app.contracts.v3 import form
from app.contracts.v3.http import (
    NOT_AUTHENTICATED,
    CurrentCustomer,
    read_object,
    render,
)
from app.contracts.v3.openapi import (
    ERRORS,
    FORM_BODY,
    FORM_OK,
    AddressCodeIn,
    CustomerForm,
    CustomerV3,
    V3Detail,
)
from app.customers.schemas import CustomerRecord
from app.errors import Conflict, Invalid, NotFound, Unauthenticated
from app.privacy.export import CustomerExport, filename

router = APIRouter(tags=["Customer API v3"], route_class=contract_route(render))


def _form_response(
    record: CustomerRecord,
    settings: Settings,
    current: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    unknown: list[str] | None = None,
    pending: str | None = None,
) -> Response:
    shown = current or form.values(record)
    body: dict[str, Any] = {
        "customer_id": record.ulid,
        "form": form.render(shown, settings.supported_languages, errors, pending),
        "has_errors": bool(errors or unknown),
    }
    if unknown:
        body["non_field_errors"] = unknown
    return JSON(body)


@router.get(
    "/api/v3/customer/",
    response_model=CustomerV3,
    responses=ERRORS,
    summary="The signed-in customer's details",
)
async def get_me(customer: CurrentCustomer) -> Response:
    return JSON({"customer_id": customer.ulid, **form.values(customer)})


@router.get(
    "/api/v3/customer/update/",
    response_model=CustomerForm,
    responses={**ERRORS, **FORM_OK},
    summary="The update form with the current values",
)
async def get_form(
    customer: CurrentCustomer, customers: CustomersDep, settings: SettingsDep
) -> Response:
    pending = await customers.addresses.pending(customer.id)
    return _form_response(customer, settings, pending=pending)


@router.post(
    "/api/v3/customer/update/",
    response_model=CustomerForm,
    responses={
        **ERRORS,
        **FORM_OK,
        400: {"model": V3Detail, "description": "Body is not a JSON object"},
    },
    openapi_extra=FORM_BODY,
    summary="Submit changes (partial); 200 with the form and has_errors either way",
)
async def post_form(
    request: Request, customer: CurrentCustomer, customers: CustomersDep, settings: SettingsDep
) -> Response:
    body = await read_object(request)
    if not body:
        return _form_response(customer, settings)
    sub = form.read_submission(body, form.values(customer))
    if sub.errors or sub.unknown:
        errors = dict(sub.errors)
        try:  # the core's rules still check the rest: every message at once
            customers.check(sub.changes)
        except Invalid as exc:
            for name, msgs in form.errors_by_v3_name(exc.errors).items():
                errors.setdefault(name, msgs)
        return _form_response(customer, settings, sub.echoed, errors, sub.unknown)
    if not sub.changes:
        return _form_response(customer, settings)
    try:
        actor = f"customer:{customer.ulid}"
        saved = await customers.update_own(customer, sub.changes, actor=actor)
    except Invalid as exc:
        return _form_response(customer, settings, sub.echoed, form.errors_by_v3_name(exc.errors))
    except Conflict as exc:
        if exc.field is None:
            return _form_response(customer, settings, sub.echoed, unknown=[exc.message])
        errors = form.errors_by_v3_name({exc.field: [exc.message]})
        return _form_response(customer, settings, sub.echoed, errors)
    except NotFound:
        raise Unauthenticated(NOT_AUTHENTICATED, invalid_token=True) from None
    return _form_response(saved.record, settings, pending=saved.pending_email)


@router.post(
    "/api/v3/customer/email/confirm/",
    response_model=CustomerV3,
    responses={
        **ERRORS,
        400: {"model": V3Detail, "description": "Wrong or expired code (5 tries)"},
        409: {"model": V3Detail, "description": "The address was registered meanwhile"},
    },
    summary="Confirm a new sign-in address with the code mailed to it",
)
async def confirm_address(
    body: AddressCodeIn, customer: CurrentCustomer, customers: CustomersDep
) -> Response:
    actor = f"customer:{customer.ulid}"
    record = await customers.addresses.confirm(customer.id, body.code, actor)
    return JSON({"customer_id": record.ulid, **form.values(record)})


@router.get(
    "/api/v3/customer/export/",
    response_model=CustomerExport,
    responses={
        **ERRORS,
        200: {
            "description": "Everything held about you, as a JSON attachment "
            "(`Content-Disposition: attachment`): every stored field, linked loyalty "
            "memberships, the audit trail of your records, and `exported_at`.",
        },
    },
    summary="Download everything held about the signed-in customer (right of access)",
)
async def export_me(customer: CurrentCustomer, exports: ExportDep) -> Response:
    try:
        document = await exports.export(customer.id)
    except NotFound:  # deleted since the token was checked
        raise Unauthenticated(NOT_AUTHENTICATED, invalid_token=True) from None
    return attachment(document, filename(customer.ulid))
