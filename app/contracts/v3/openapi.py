"""The v3 contract in /openapi.json: the models that document its answers (the routes render
with orjson), and what it states beyond FastAPI's own document."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app import errors
from app.contracts import routing
from app.contracts.openapi import BLANK, TYPICAL_ERRORS, DocumentPart, examples_of
from app.contracts.routing import Problem
from app.contracts.v3 import form, language
from app.contracts.v3.http import BAD_JSON, render

_LANGUAGES = ("en", "sw", "fr", "ar", "pt", "es", "de", "zh")  # SUPPORTED_LANGUAGES' default
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

    type: form.FieldType = Field(
        description="The input to show: free text, an e-mail address, a phone number, a date "
        "(YYYY-MM-DD), a country (alpha-2, alpha-3 or English name), or one of `choices`"
    )
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


class AddressCodeIn(BaseModel):
    """The code mailed to the new sign-in address."""

    model_config = ConfigDict(json_schema_extra={"example": {"code": "123456"}})
    code: str = Field(max_length=20)


def _example_form() -> dict[str, Any]:
    current = {k: v for k, v in _CUSTOMER_EXAMPLE.items() if k != "customer_id"}
    return form.render(current, _LANGUAGES)


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
    200: {"description": "The form (with `has_errors` and per-field `errors` after a POST)"}
}
FORM_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/CustomerFormIn"},
                "example": {"first_name": "Cyn", "mobile": "0712345678", "dob": "1985-09-06"},
            }
        },
    }
}


def _sent_only(schema: dict[str, Any]) -> dict[str, Any]:
    """The form's body without defaults: a field left out is not changed (it is not set to
    null), and generators read a default as "always present"."""
    properties = {
        name: {k: v for k, v in prop.items() if k != "default"}
        for name, prop in schema["properties"].items()
    }
    return {**schema, "properties": properties}


def _sample_error(method: str, path: str, status: int) -> Exception | Problem | None:
    """A typical cause of each documented error, as the v3 routes meet it."""
    if status == 400 and method == "post":
        return errors.Invalid({routing.NON_FIELD: [BAD_JSON]})
    if status == 403:  # a staff token on a self-service route
        return errors.Forbidden("You do not have permission to perform this action.")
    return TYPICAL_ERRORS.get(status)


def _sample_language_error(method: str, path: str, status: int) -> Exception | Problem | None:
    if status == 400 and method == "post":
        languages = ", ".join(_LANGUAGES)
        return errors.Invalid({"language": [f"Unsupported language; choose one of: {languages}."]})
    return _sample_error(method, path, status)


PART = DocumentPart(
    tags=("Customer API v3",),
    operation_ids={
        ("get", "/api/v3/customer/"): "v3_get_customer",
        ("get", "/api/v3/customer/export/"): "v3_export_customer",
        ("get", "/api/v3/customer/update/"): "v3_get_update_form",
        ("post", "/api/v3/customer/update/"): "v3_post_update_form",
        ("post", "/api/v3/customer/email/confirm/"): "v3_confirm_address",
    },
    # Set by the finishing pass, not on the route: FastAPI would drop the null values.
    examples={
        ("get", "/api/v3/customer/update/"): FORM_EXAMPLE,
        ("post", "/api/v3/customer/update/"): FORM_EXAMPLE,
    },
    components={"CustomerFormIn": _sent_only(CustomerFormIn.model_json_schema())},
    component_examples=examples_of(CustomerV3, CustomerForm),
    formats={"CustomerV3": {"dob": "date", "email": "email"}},
    input_formats={"CustomerFormIn": {"dob": ("date", BLANK)}},
    error_schemas={"default": "V3Detail"},
    render=render,
    sample_error=_sample_error,
)
LANGUAGE_PART = DocumentPart(
    tags=("Customer API v3: language",),
    operation_ids={
        ("get", "/api/v3/customer/language/"): "v3_get_language",
        ("post", "/api/v3/customer/language/"): "v3_set_language",
    },
    component_examples=examples_of(language.LanguageOut, language.LanguageSet),
    error_schemas={"default": "LanguageError"},
    render=language.render,
    sample_error=_sample_language_error,
)
