"""What the v1 contract states in /openapi.json beyond FastAPI's own document."""

from copy import deepcopy
from typing import Any

from app import errors
from app.contracts.openapi import (
    BLANK,
    TYPICAL_ERRORS,
    DocumentContext,
    DocumentPart,
    examples_of,
    header,
    ref,
)
from app.contracts.routing import Problem
from app.contracts.v1.query import sort
from app.contracts.v1.router import render
from app.contracts.v1.schemas import CUSTOMER_EXAMPLE, V1Customer, V1PageEnvelope
from app.contracts.v1.translate import NAME_MAX
from app.errors import Message

_LIST = "/api/v1/customers"
_ONE = "/api/v1/customers/{customer_id}"
_ETAG = header("The customer's current version, for If-None-Match and If-Match", required=True)
_WRITES = ("post", "put", "patch")


def _too_long() -> list[str]:
    return [Message(f"Ensure this field has no more than {NAME_MAX} characters.", "too_long")]


def _sample_error(method: str, path: str, status: int) -> Exception | Problem | None:
    """A typical cause of each documented error, as this contract's routes meet it (the 400
    of a write is the seed's own example)."""
    if status == 400 and method in _WRITES:
        return errors.Invalid({"first_name": _too_long(), "last_name": _too_long()})
    if status == 400 and (method, path) == ("get", _LIST):
        found: dict[str, list[str]] = {}
        sort(found, "nickname")
        return errors.Invalid(found)
    if status == 404:
        return errors.NotFound()
    if status == 409 and method in _WRITES:
        return errors.Conflict("A customer with this email already exists.", field="email")
    return TYPICAL_ERRORS.get(status)


def _bodies(schema: dict[str, Any], context: DocumentContext) -> None:
    """One runtime model reads every v1 write; the document tells create/replace (names
    required, as the core's rules require them) from a merge patch (nothing required)."""
    components = schema["components"]["schemas"]
    lenient = components.pop("V1CustomerIn", None)
    if lenient is None:
        return
    write = deepcopy(lenient)
    write["title"] = "V1CustomerWrite"
    write["required"] = ["firstName", "lastName"]
    for name in ("firstName", "lastName"):
        title = write["properties"][name].get("title", name)
        write["properties"][name] = {"type": "string", "title": title}
    patch = deepcopy(lenient)
    patch["title"] = "V1CustomerPatch"
    patch["description"] = "JSON merge patch: only the members sent change; `null` clears one."
    patch["example"] = {"address": {"postCode": "2145"}}
    components["V1CustomerWrite"] = write
    components["V1CustomerPatch"] = patch
    targets = {
        ("post", _LIST): "V1CustomerWrite",
        ("put", _ONE): "V1CustomerWrite",
        ("patch", _ONE): "V1CustomerPatch",
    }
    for (method, path), name in targets.items():
        body = schema["paths"].get(path, {}).get(method, {}).get("requestBody")
        for media in (body or {}).get("content", {}).values():
            media["schema"] = ref(name)


PART = DocumentPart(
    tags=("Customer Management API v1", "Change feed"),
    operation_ids={
        ("get", "/api/v1/events"): "v1_read_events",
        ("get", _LIST): "v1_list_customers",
        ("post", _LIST): "v1_create_customer",
        ("get", _ONE): "v1_get_customer",
        ("put", _ONE): "v1_replace_customer",
        ("patch", _ONE): "v1_patch_customer",
        ("delete", _ONE): "v1_delete_customer",
    },
    examples={("post", _LIST): {"success": True, "status": 201, "data": CUSTOMER_EXAMPLE}},
    component_examples=examples_of(V1Customer, V1PageEnvelope),
    headers={
        ("post", _LIST, "201"): {
            "ETag": _ETAG,
            "Content-Location": header("The new customer's URL", required=True),
        },
        ("get", _ONE, "200"): {"ETag": _ETAG},
        ("get", _ONE, "304"): {"ETag": _ETAG},
        ("put", _ONE, "200"): {"ETag": _ETAG},
        ("patch", _ONE, "200"): {"ETag": _ETAG},
    },
    parameters={
        (_LIST, "pageNo"): {"type": "integer", "minimum": 0},
        (_LIST, "pageSize"): {"type": "integer", "minimum": 1, "maximum": 1000},
        # blank: no filter, as before
        (_LIST, "lastUpdated"): {"anyOf": [{"type": "string", "format": "date-time"}, BLANK]},
    },
    formats={"V1Customer": {"dob": "date", "email": "email", "lastUpdated": "date-time"}},
    input_formats={
        "V1CustomerWrite": {"dob": ("date", BLANK), "email": ("email", BLANK)},
        "V1CustomerPatch": {"dob": ("date", BLANK), "email": ("email", BLANK)},
    },
    # v1 keeps a plain `{"detail"}` for 401, as its seed has it.
    error_schemas={"401": "V1Unauthorized", "default": "V1ErrorEnvelope"},
    render=render,
    sample_error=_sample_error,
    adjust=_bodies,
)
