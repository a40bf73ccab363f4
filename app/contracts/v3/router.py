"""Customer API v3 (seed 004), self-service: the current customer and the update form."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

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
from app.customers.schemas import CustomerRecord
from app.errors import Conflict, Invalid, NotFound, Unauthenticated
from app.privacy.export import CustomerExport, filename

router = APIRouter(tags=["Customer API v3"], route_class=contract_route(render))


# --- OpenAPI models (responses are rendered with orjson; these document them) ---

_CUSTOMER_EXAMPLE: dict[str, Any] = {
    "customer_id": "01HWJ8WH9X8WBK65EMGY9YKPBS",
    "first_name": "Cynthia",
    "last_name": "Norris",
    "mobile": "+254712345678",
    "email": "aaron97@example.org",
    "nationality": "LS",
    "dob": "1985-09-06",
    "gender": "female",
    "passport_number": None,
    "nation_id_number": "12345678",
    "language": "en",
    "address": "12 Moi Avenue, Nairobi, 00100, Kenya",
}


class CustomerV3(BaseModel):
    """The current customer; absent values are null."""

    model_config = ConfigDict(json_schema_extra={"example": _CUSTOMER_EXAMPLE})
    customer_id: str
    first_name: str
    last_name: str
    mobile: str | None = Field(description="E.164, with country code")
    email: str | None
    nationality: str | None = Field(description="ISO 3166-1 alpha-2")
    dob: str | None = Field(description="YYYY-MM-DD")
    gender: str | None
    passport_number: str | None
    nation_id_number: str | None
    language: str
    address: str | None = Field(description='The non-empty address parts joined with ", "')


class Choice(BaseModel):
    value: str
    label: str


class FormField(BaseModel):
    """One field of the form schema."""

    type: str = Field(description="string | email | phone | date | country | choice")
    label: str
    required: bool
    max_length: int | None = Field(None, description="Only on free-text fields")
    choices: list[Choice] | None = Field(None, description="Only on choice fields")
    value: Any = Field(description="Current value (or the submitted one when has_errors)")
    errors: list[str]
    pending: str | None = Field(
        None,
        description="Only on `email`, while a new address waits for the code mailed to it "
        "(POST /api/v3/customer/email/confirm/)",
    )


def _example_form() -> dict[str, Any]:
    current = {k: v for k, v in _CUSTOMER_EXAMPLE.items() if k != "customer_id"}
    return form.render(current, ["en", "sw", "fr", "ar", "pt", "es", "de", "zh"])


FORM_EXAMPLE = {
    "customer_id": _CUSTOMER_EXAMPLE["customer_id"],
    "form": _example_form(),
    "has_errors": False,
}


class CustomerForm(BaseModel):
    """The update form: `form` is keyed by field name, in display order."""

    model_config = ConfigDict(json_schema_extra={"example": FORM_EXAMPLE})
    customer_id: str
    form: dict[str, FormField]
    has_errors: bool
    non_field_errors: list[str] | None = Field(
        None, description="Only present when the POST named unknown fields"
    )


class V3Detail(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"detail": NOT_AUTHENTICATED}})
    detail: str


class CustomerFormIn(BaseModel):
    """Plain values keyed by field name; send only the fields that change."""

    first_name: str | None = None
    last_name: str | None = None
    mobile: str | None = None
    email: str | None = None
    nationality: str | None = Field(None, description="alpha-2, alpha-3 or English name")
    dob: str | None = Field(None, description="YYYY-MM-DD")
    gender: str | None = Field(None, description=", ".join(v for v, _ in form.GENDERS))
    passport_number: str | None = None
    nation_id_number: str | None = None
    language: str | None = None
    address: str | None = Field(None, description="Replaces the whole stored address")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": V3Detail, "description": "No, invalid or expired customer token"},
    403: {"model": V3Detail, "description": "Not a customer token (staff)"},
}
# Declared here too (not only on the model) so the example keeps the form's field order.
FORM_OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The form (with `has_errors` and per-field `errors` after a POST)",
        "content": {"application/json": {"example": FORM_EXAMPLE}},
    }
}
FORM_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": CustomerFormIn.model_json_schema(),
                "example": {"first_name": "Cyn", "mobile": "0712345678", "dob": "1985-09-06"},
            }
        },
    }
}


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


class AddressCodeIn(BaseModel):
    """The code mailed to the new sign-in address."""

    model_config = ConfigDict(json_schema_extra={"example": {"code": "123456"}})
    code: str = Field(max_length=20)


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
