"""OpenAPI documentation of the loyalty register (the router renders plain dicts)."""

from typing import Any

from pydantic import BaseModel, Field

from app import errors
from app.contracts.loyalty.http import render
from app.contracts.loyalty.options import metadata
from app.contracts.loyalty.query import parse_ordering
from app.contracts.openapi import TYPICAL_ERRORS, DocumentPart, header
from app.contracts.routing import Problem
from app.loyalty.schemas import (
    BOOLEAN_PATTERN,
    DATE_MSG,
    DATE_PATTERN,
    DECIMAL_PLACES,
    MAX_DIGITS,
    MAX_LENGTH,
    PARSES,
    REQUIRED,
)

# One input item as the parser reads it (DRF's lenient fields): numbers are read as text,
# lengths count after trimming, and the rules a schema cannot state (the date must exist, a
# discount's digits and places) answer 400 with the field's message.
_ITEM_PROPERTIES: dict[str, Any] = {
    "loyalty_id": {
        "type": ["string", "number"],
        "minLength": 1,
        "maxLength": MAX_LENGTH["loyalty_id"],
        "description": "Unique; the upsert key and the key in URLs",
    },
    "cardno": {"type": ["string", "number", "null"], "maxLength": MAX_LENGTH["cardno"]},
    "discount": {
        "type": ["string", "number", "null"],
        "description": (
            f"A decimal number: at most {MAX_DIGITS} digits, {DECIMAL_PLACES} after the point;"
            " blank or null for none"
        ),
    },
    "client_name": {
        "type": ["string", "number"],
        "minLength": 1,
        "maxLength": MAX_LENGTH["client_name"],
    },
    "client_birthday": {
        "type": "string",
        "pattern": DATE_PATTERN,
        "description": (
            "YYYY-MM-DD; also YYYY-MM and YYYY (the first day), M/D/YYYY (month first) and the"
            " rendered YYYY-MM-DDT00:00:00"
        ),
    },
    "is_male": {
        "anyOf": [
            {"type": ["boolean", "null"]},
            {"enum": [0, 1]},
            {"type": "string", "pattern": BOOLEAN_PATTERN},
        ],
        "description": (
            "true/false; also 1/0 and DRF's spellings (t/f, yes/no, y/n, on/off, any case);"
            " null, blank, `null` or `none` for unknown"
        ),
    },
}
# A form carries text only: the same fields as strings (blank for none).
_FORM_PROPERTIES: dict[str, Any] = {
    **{name: {**spec, "type": "string"} for name, spec in _ITEM_PROPERTIES.items()},
    "is_male": {
        "type": "string",
        "pattern": BOOLEAN_PATTERN,
        "description": _ITEM_PROPERTIES["is_male"]["description"],
    },
}
_ITEM_EXAMPLE = {
    "loyalty_id": "3",
    "cardno": "33",
    "discount": "15",
    "client_name": "Mariya",
    "client_birthday": "1982-11-17",
    "is_male": False,
}


_FORM_EXAMPLE = {**_ITEM_EXAMPLE, "is_male": "false"}  # a form sends text only


def _item(
    properties: dict[str, Any], example: dict[str, Any], *, partial: bool = False
) -> dict[str, Any]:
    """POST and PUT need the required fields; PATCH may send any of them, or nothing at all."""
    if partial:
        return {"type": "object", "properties": properties, "example": {"discount": "5.00"}}
    return {
        "type": "object",
        "properties": properties,
        "required": list(REQUIRED),
        "example": example,
    }


ITEM_SCHEMA = _item(_ITEM_PROPERTIES, _ITEM_EXAMPLE)
FORM_ITEM_SCHEMA = _item(_FORM_PROPERTIES, _FORM_EXAMPLE)
FORMS = PARSES[1:]


BIRTHDAY_OUT_PATTERN = r"^\d{4}-\d{2}-\d{2}T00:00:00$"


class LoyaltyMemberOut(BaseModel):
    """One member as the register shows it."""

    url: str = Field(examples=["http://localhost:8000/api/v1/loyalty/3/"])
    loyalty_id: str = Field(examples=["3"])
    cardno: str | None = Field(examples=["33"])
    discount: str | None = Field(examples=["15.00"])
    client_name: str | None = Field(examples=["Mariya"])
    client_birthday: str | None = Field(
        examples=["1982-11-17T00:00:00"],
        pattern=BIRTHDAY_OUT_PATTERN,
        description="A calendar date with no time zone, written as seed 003 documents it: "
        "the date, then `T00:00:00` (always; no offset). It is not a moment: read its first "
        "10 characters as the date (YYYY-MM-DD) and show them as they are; a time-zone "
        "conversion would move it to another day.",
    )
    is_male: bool | None = Field(examples=[False])


class LoyaltyPage(BaseModel):
    count: int = Field(examples=[3])
    next: str | None = Field(examples=["http://localhost:8000/api/v1/loyalty/?page=2"])
    previous: str | None = Field(examples=[None])
    results: list[LoyaltyMemberOut]


class UpsertResult(BaseModel):
    updated: int = Field(examples=[1])
    inserted: int = Field(examples=[2])


class LoyaltyDetail(BaseModel):
    detail: str = Field(examples=["Not found"])


class Metadata(BaseModel):
    name: str = Field(examples=["Loyalty List"])
    description: str = Field(examples=["Loyalty"])
    renders: list[str]
    parses: list[str]
    actions: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description="Left out for a member that does not exist, as DRF does (PUT needs one)",
    )


def _schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# Named bodies (added to the document's components by PART): generators build one class per
# name, and a list body needs its own name to be sent as a list.
LOYALTY_COMPONENTS: dict[str, Any] = {
    "LoyaltyMemberWrite": {**ITEM_SCHEMA, "title": "LoyaltyMemberWrite"},
    "LoyaltyMemberBulk": {
        "title": "LoyaltyMemberBulk",
        "type": "array",
        "items": _schema_ref("LoyaltyMemberWrite"),
        "maxItems": 10_000,
        "example": [_ITEM_EXAMPLE],
    },
    "LoyaltyMemberForm": {**FORM_ITEM_SCHEMA, "title": "LoyaltyMemberForm"},
    "LoyaltyMemberPatch": {
        **_item(_ITEM_PROPERTIES, {}, partial=True),
        "title": "LoyaltyMemberPatch",
    },
    "LoyaltyMemberPatchForm": {
        **_item(_FORM_PROPERTIES, {}, partial=True),
        "title": "LoyaltyMemberPatchForm",
    },
    "LoyaltyFieldErrors": {
        "title": "LoyaltyFieldErrors",
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "example": {"client_birthday": [DATE_MSG]},
    },
    "LoyaltyBulkErrors": {
        "title": "LoyaltyBulkErrors",
        "type": "array",
        "items": _schema_ref("LoyaltyFieldErrors"),
    },
}

# JSON only in the document: the forms (same fields as text, schema LoyaltyMemberForm) are the
# browsable page's; a second media type per body breaks the generated clients (a required
# body typed `| Unset` without its import, a list body checked with isinstance(list[...])).
_FORMS_TOO = (
    "Also read from the browsable page's forms (`application/x-www-form-urlencoded`,"
    " `multipart/form-data`): the same fields as text, schema `{}`."
)
BODY_DOC = {
    "description": _FORMS_TOO.format("LoyaltyMemberForm"),
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [_schema_ref("LoyaltyMemberWrite"), _schema_ref("LoyaltyMemberBulk")]
                }
            },
        },
    },
}
ITEM_BODY_DOC = {
    "description": _FORMS_TOO.format("LoyaltyMemberForm"),
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _schema_ref("LoyaltyMemberWrite")}},
    },
}
# An empty PATCH changes nothing and answers the member, as DRF does.
PATCH_BODY_DOC = {
    "description": _FORMS_TOO.format("LoyaltyMemberPatchForm"),
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": _schema_ref("LoyaltyMemberPatch")}},
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": LoyaltyDetail, "description": "Missing or invalid bearer token"},
    403: {"model": LoyaltyDetail, "description": "Not a staff token with the loyalty scope"},
    404: {"model": LoyaltyDetail, "description": "No such member, invalid page or unknown format"},
}
BAD_REQUEST: dict[str, Any] = {
    "description": (
        "Field errors `{field: [message]}`, one per item for a bulk (`{}` for valid ones), or"
        " `{detail}` for a body that cannot be parsed"
    ),
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    _schema_ref("LoyaltyDetail"),
                    _schema_ref("LoyaltyFieldErrors"),
                    _schema_ref("LoyaltyBulkErrors"),
                ]
            }
        }
    },
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: BAD_REQUEST,
    413: {"model": LoyaltyDetail, "description": "Body over the size limit"},
    415: {"model": LoyaltyDetail, "description": "Body in an unsupported media type"},
}
IDEMPOTENCY_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {
        "model": LoyaltyDetail,
        "description": "A request with this Idempotency-Key is still running",
    },
    422: {"model": LoyaltyDetail, "description": "This Idempotency-Key was used with another body"},
}

_LIST = "/api/v1/loyalty/"
_ONE = "/api/v1/loyalty/{loyalty_id}/"
_MEMBER = {
    "url": "http://127.0.0.1:8000/api/v1/loyalty/3/",
    "loyalty_id": "3",
    "cardno": "33",
    "discount": "15.00",
    "client_name": "Mariya",
    "client_birthday": "1982-11-17T00:00:00",
    "is_male": False,
}
_BIRTHDAY_IN = ("date", {"type": "string", "pattern": DATE_PATTERN})


def _sample_error(method: str, path: str, status: int) -> Exception | Problem | None:
    """A typical cause of each documented error, as the register's routes meet it."""
    if status == 400 and method in ("post", "put", "patch"):
        return errors.Invalid({"client_birthday": [DATE_MSG]})
    if status == 400 and (method, path) == ("get", _LIST):
        try:
            parse_ordering("nickname")
        except errors.Invalid as exc:
            return exc
    if status == 404:
        return errors.NotFound("Not found")
    if status == 415:
        return Problem(415, 'Unsupported media type "text/plain" in request.')
    return TYPICAL_ERRORS.get(status)


PART = DocumentPart(
    tags=("Loyalty register",),
    operation_ids={
        ("get", _LIST): "loyalty_list_members",
        ("head", _LIST): "loyalty_list_members_head",
        ("post", _LIST): "loyalty_create_members",
        ("options", _LIST): "loyalty_list_options",
        ("get", _ONE): "loyalty_get_member",
        ("head", _ONE): "loyalty_get_member_head",
        ("put", _ONE): "loyalty_replace_member",
        ("patch", _ONE): "loyalty_patch_member",
        ("delete", _ONE): "loyalty_delete_member",
        ("options", _ONE): "loyalty_member_options",
    },
    examples={
        ("get", _LIST): {"count": 1, "next": None, "previous": None, "results": [_MEMBER]},
        ("post", _LIST): {"updated": 0, "inserted": 1},
        ("options", _LIST): metadata("Loyalty List", "POST"),
        ("get", _ONE): _MEMBER,
        ("put", _ONE): _MEMBER,
        ("patch", _ONE): _MEMBER,
        ("options", _ONE): metadata("Loyalty Instance", "PUT"),
    },
    headers={
        ("post", _LIST, "201"): {
            "Location": header("The member's URL (one member sent; not for a list)")
        },
    },
    parameters={
        (_LIST, "page"): {
            "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["last"]}]
        },
        (_LIST, "page_size"): {"type": "integer", "minimum": 1},
    },
    input_formats={
        "LoyaltyMemberWrite": {"client_birthday": _BIRTHDAY_IN},
        "LoyaltyMemberPatch": {"client_birthday": _BIRTHDAY_IN},
    },
    components=LOYALTY_COMPONENTS,
    error_schemas={"default": "LoyaltyDetail"},
    render=render,
    sample_error=_sample_error,
)
