"""The finishing pass over /openapi.json that makes it generate working clients.

FastAPI's document is close but not enough for client generators (openapi-python-client,
openapi-typescript): operation ids are derived from paths, the lenient string parameters
hide that pages are numbers, and answers the routes build themselves (errors, headers) are
not described. This pass states them; nothing here changes what the service does.
"""

from copy import deepcopy
from typing import Any

from app.contracts.loyalty.openapi import LOYALTY_COMPONENTS
from app.contracts.loyalty.options import metadata
from app.contracts.v1.schemas import CUSTOMER_EXAMPLE
from app.loyalty.schemas import DATE_PATTERN

# Chosen, stable operation ids: generated clients name their functions after them, so they
# must not change when a route's Python function or path spelling does.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("post", "/api/customers"): "jambo_create_customer",
    ("get", "/api/customers"): "jambo_list_customers",
    ("put", "/api/customers"): "jambo_update_own_customer",
    ("get", "/api/customer/{customer_ulid}"): "jambo_get_customer",
    ("get", "/api/customer/{customer_ulid}/export"): "jambo_export_customer",
    ("put", "/api/customer/{customer_ulid}"): "jambo_update_customer",
    ("delete", "/api/customer/{customer_ulid}"): "jambo_delete_customer",
    ("post", "/api/customer/{customer_ulid}/delete/request"): "jambo_request_deletion",
    ("get", "/api/customer/{token}/delete/confirm"): "jambo_confirm_deletion_link",
    ("post", "/api/customer/{token}/delete/confirm"): "jambo_confirm_deletion",
    ("get", "/api/v1/customers"): "v1_list_customers",
    ("post", "/api/v1/customers"): "v1_create_customer",
    ("get", "/api/v1/customers/{customer_id}"): "v1_get_customer",
    ("put", "/api/v1/customers/{customer_id}"): "v1_replace_customer",
    ("patch", "/api/v1/customers/{customer_id}"): "v1_patch_customer",
    ("delete", "/api/v1/customers/{customer_id}"): "v1_delete_customer",
    ("get", "/api/v1/loyalty/"): "loyalty_list_members",
    ("head", "/api/v1/loyalty/"): "loyalty_list_members_head",
    ("post", "/api/v1/loyalty/"): "loyalty_create_members",
    ("options", "/api/v1/loyalty/"): "loyalty_list_options",
    ("get", "/api/v1/loyalty/{loyalty_id}/"): "loyalty_get_member",
    ("head", "/api/v1/loyalty/{loyalty_id}/"): "loyalty_get_member_head",
    ("put", "/api/v1/loyalty/{loyalty_id}/"): "loyalty_replace_member",
    ("patch", "/api/v1/loyalty/{loyalty_id}/"): "loyalty_patch_member",
    ("delete", "/api/v1/loyalty/{loyalty_id}/"): "loyalty_delete_member",
    ("options", "/api/v1/loyalty/{loyalty_id}/"): "loyalty_member_options",
    ("get", "/api/v3/customer/"): "v3_get_customer",
    ("get", "/api/v3/customer/export/"): "v3_export_customer",
    ("get", "/api/v3/customer/update/"): "v3_get_update_form",
    ("post", "/api/v3/customer/update/"): "v3_post_update_form",
    ("post", "/api/v3/customer/email/confirm/"): "v3_confirm_address",
    ("get", "/api/v3/customer/language/"): "v3_get_language",
    ("post", "/api/v3/customer/language/"): "v3_set_language",
    ("post", "/api/auth/token"): "auth_token",
    ("post", "/api/auth/email-code"): "auth_email_code",
    ("get", "/healthz"): "ops_healthz",
    ("get", "/readyz"): "ops_readyz",
    ("get", "/metrics"): "ops_metrics",
}

# The error body each contract's renderer writes (app/contract.py → each router's `render`).
_ERROR_BODY = {
    "Jambo customers": "MessageEnvelope",
    "Customer Management API v1": "V1ErrorEnvelope",
    "Loyalty register": "LoyaltyDetail",
    "Customer API v3": "V3Detail",
    "Customer API v3: language": "LanguageError",
    "Auth": "OAuthError",
}
_V1_401 = "V1Unauthorized"  # v1 keeps a plain `{"detail"}` for 401, as its seed has it


def _header(description: str, *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


_REQUEST_ID = _header("This request's id (the caller's own X-Request-ID when it sent one)")
_ETAG = _header("The customer's current version, for If-None-Match and If-Match", required=True)
# Headers particular routes answer with, by (method, path, status).
_HEADERS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    ("post", "/api/v1/customers", "201"): {
        "ETag": _ETAG,
        "Content-Location": _header("The new customer's URL", required=True),
    },
    ("get", "/api/v1/customers/{customer_id}", "200"): {"ETag": _ETAG},
    ("get", "/api/v1/customers/{customer_id}", "304"): {"ETag": _ETAG},
    ("put", "/api/v1/customers/{customer_id}", "200"): {"ETag": _ETAG},
    ("patch", "/api/v1/customers/{customer_id}", "200"): {"ETag": _ETAG},
    ("post", "/api/v1/loyalty/", "201"): {
        "Location": _header("The member's URL (one member sent; not for a list)")
    },
}

# Parameters the contracts parse leniently from text, documented as the numbers they are.
_INTEGER_PARAMETERS: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/customers", "page"): {"type": "integer", "minimum": 1},
    ("/api/customers", "page_size"): {"type": "integer", "minimum": 1},
    ("/api/v1/customers", "pageNo"): {"type": "integer", "minimum": 0},
    ("/api/v1/customers", "pageSize"): {"type": "integer", "minimum": 1, "maximum": 1000},
    ("/api/v1/loyalty/", "page"): {
        "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["last"]}]
    },
    ("/api/v1/loyalty/", "page_size"): {"type": "integer", "minimum": 1},
}

# String formats of what the service answers (on the string branch of a nullable property).
_FORMATS: dict[str, dict[str, str]] = {
    "CustomerOut": {"dob": "date", "email": "email"},
    "V1Customer": {"dob": "date", "email": "email", "lastUpdated": "date-time"},
    "CustomerV3": {"dob": "date", "email": "email"},
}
# What it reads: the format, or the other spellings it accepts too (blank for none; the
# register's other date forms), so that a schema-valid value is never refused for its shape.
_BLANK = {"type": "string", "maxLength": 0}
_INPUT_FORMATS: dict[str, dict[str, dict[str, Any]]] = {
    "CustomerIn": {"dob": _BLANK, "email": _BLANK},
    "V1CustomerWrite": {"dob": _BLANK, "email": _BLANK},
    "V1CustomerPatch": {"dob": _BLANK, "email": _BLANK},
    "LoyaltyMemberWrite": {"client_birthday": {"type": "string", "pattern": DATE_PATTERN}},
    "LoyaltyMemberPatch": {"client_birthday": {"type": "string", "pattern": DATE_PATTERN}},
}
_INPUT_KIND = {"dob": "date", "email": "email", "client_birthday": "date"}


def _input_format(prop: dict[str, Any], fmt: str, other: dict[str, Any]) -> dict[str, Any]:
    """`{format} | other spelling` (| null where the property was nullable)."""
    keep = {k: v for k, v in prop.items() if k in ("title", "description")}
    nullable = any(b.get("type") == "null" for b in prop.get("anyOf", []))
    branches = [{"type": "string", "format": fmt}, other]
    if nullable:
        branches.append({"type": "null"})
    return {**keep, "anyOf": branches}


# Success examples for the routes whose models carry none (the answers' bodies in full).
_JAMBO_CUSTOMER = {
    "ulid": "01HWJ8WH9X8WBK65EMGY9YKPBS",
    "first_name": "Cynthia",
    "last_name": "Norris",
    "middle_name": None,
    "nationality": "Lesotho",
    "dob": "1985-09-06",
    "email": "cynthia@example.org",
    "phone_number": "+254712345678",
}
_MEMBER = {
    "url": "http://127.0.0.1:8000/api/v1/loyalty/3/",
    "loyalty_id": "3",
    "cardno": "33",
    "discount": "15.00",
    "client_name": "Mariya",
    "client_birthday": "1982-11-17T00:00:00",
    "is_male": False,
}
_DELETED = {"statusCode": 200, "body": "Customer deleted successfully"}
_EXAMPLES: dict[tuple[str, str], Any] = {
    ("post", "/api/customers"): {"statusCode": 201, "body": _JAMBO_CUSTOMER},
    ("get", "/api/customers"): {
        "count": 1,
        "next": None,
        "previous": None,
        "results": {"statusCode": 200, "body": [_JAMBO_CUSTOMER]},
    },
    ("put", "/api/customers"): {"statusCode": 200, "body": _JAMBO_CUSTOMER},
    ("get", "/api/customer/{customer_ulid}"): {"statusCode": 200, "body": _JAMBO_CUSTOMER},
    ("put", "/api/customer/{customer_ulid}"): {"statusCode": 200, "body": _JAMBO_CUSTOMER},
    ("delete", "/api/customer/{customer_ulid}"): {"statusCode": 204},
    ("post", "/api/customer/{customer_ulid}/delete/request"): {
        "statusCode": 200,
        "body": "Data deletion link sent successfully",
    },
    ("get", "/api/customer/{token}/delete/confirm"): _DELETED,
    ("post", "/api/customer/{token}/delete/confirm"): _DELETED,
    ("get", "/api/v1/loyalty/"): {"count": 1, "next": None, "previous": None, "results": [_MEMBER]},
    ("post", "/api/v1/loyalty/"): {"updated": 0, "inserted": 1},
    ("options", "/api/v1/loyalty/"): metadata("Loyalty List", "POST"),
    ("get", "/api/v1/loyalty/{loyalty_id}/"): _MEMBER,
    ("put", "/api/v1/loyalty/{loyalty_id}/"): _MEMBER,
    ("patch", "/api/v1/loyalty/{loyalty_id}/"): _MEMBER,
    ("options", "/api/v1/loyalty/{loyalty_id}/"): metadata("Loyalty Instance", "PUT"),
    ("post", "/api/v1/customers"): {"success": True, "status": 201, "data": CUSTOMER_EXAMPLE},
    ("get", "/metrics"): "# HELP http_requests_total Requests answered\n",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _set_format(prop: dict[str, Any], fmt: str) -> None:
    for branch in prop.get("anyOf", []) or [prop]:
        if branch.get("type") == "string" or (
            isinstance(branch.get("type"), list) and "string" in branch["type"]
        ):
            branch["format"] = fmt


def _v1_bodies(components: dict[str, Any], paths: dict[str, Any]) -> None:
    """One runtime model reads every v1 write; the document tells create/replace (names
    required, as the core's rules require them) from a merge patch (nothing required)."""
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
        ("post", "/api/v1/customers"): "V1CustomerWrite",
        ("put", "/api/v1/customers/{customer_id}"): "V1CustomerWrite",
        ("patch", "/api/v1/customers/{customer_id}"): "V1CustomerPatch",
    }
    for (method, path), name in targets.items():
        body = paths.get(path, {}).get(method, {}).get("requestBody")
        for media in (body or {}).get("content", {}).values():
            media["schema"] = _ref(name)


def _json_first(content: dict[str, Any]) -> dict[str, Any]:
    """JSON before HTML: generators parse a response by its first media type."""
    ordered = sorted(content.items(), key=lambda kv: 0 if kv[0] == "application/json" else 1)
    return dict(ordered)


def _has_example(operation: dict[str, Any], components: dict[str, Any]) -> bool:
    """An example of the success answer; none is needed where it has no body (HEAD, 204)."""
    success = [a for s, a in operation.get("responses", {}).items() if s.startswith("2")]
    if all(not answer.get("content") for answer in success):
        return True
    for answer in success:
        for media in answer.get("content", {}).values():
            if "example" in media or "examples" in media:
                return True
            ref = media.get("schema", {}).get("$ref", "")
            if "example" in components.get(ref.rsplit("/", 1)[-1], {}):
                return True
    return False


def finish(schema: dict[str, Any]) -> dict[str, Any]:
    """Apply every statement above to FastAPI's document (in place) and return it."""
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(deepcopy(LOYALTY_COMPONENTS))
    paths: dict[str, Any] = schema["paths"]
    _v1_bodies(components, paths)
    for name, formats in _FORMATS.items():
        for prop, fmt in formats.items():
            target = components.get(name, {}).get("properties", {}).get(prop)
            if target is not None:
                _set_format(target, fmt)
    for name, others in _INPUT_FORMATS.items():
        properties = components.get(name, {}).get("properties", {})
        for prop, other in others.items():
            if prop in properties:
                properties[prop] = _input_format(properties[prop], _INPUT_KIND[prop], other)
    for path, operations in paths.items():
        for method, operation in operations.items():
            operation["operationId"] = OPERATION_IDS.get(
                (method, path), operation.get("operationId")
            )
            for parameter in operation.get("parameters", []):
                integer = _INTEGER_PARAMETERS.get((path, parameter["name"]))
                if integer is not None:
                    keep = {
                        k: parameter["schema"][k] for k in ("title",) if k in parameter["schema"]
                    }
                    parameter["schema"] = {**keep, **integer}
                if (path, parameter["name"]) == ("/api/v1/customers", "lastUpdated"):
                    # blank: no filter, as before
                    parameter["schema"] = {
                        "anyOf": [{"type": "string", "format": "date-time"}, _BLANK]
                    }
            if method == "head" or path == "/metrics":
                for answer in operation.get("responses", {}).values():
                    answer.pop("content", None)  # HEAD answers no body
            if path == "/metrics":
                operation["responses"]["200"]["content"] = {
                    "text/plain": {"schema": {"type": "string"}}
                }
            tag = (operation.get("tags") or [""])[0]
            for status, answer in operation.get("responses", {}).items():
                if "content" in answer:
                    answer["content"] = _json_first(answer["content"])
                error = _V1_401 if tag.endswith("v1") and status == "401" else _ERROR_BODY.get(tag)
                if error and status >= "400" and method != "head" and not answer.get("content"):
                    answer["content"] = {"application/json": {"schema": _ref(error)}}
                headers = answer.setdefault("headers", {})
                headers.update(_HEADERS.get((method, path, status), {}))
                if status == "401":
                    headers["WWW-Authenticate"] = _header("The scheme to authenticate with")
                if status == "503":
                    headers["Retry-After"] = _header("Seconds to wait before trying again")
                headers["X-Request-ID"] = _REQUEST_ID
            example = _EXAMPLES.get((method, path))
            if example is not None:
                for status, answer in operation["responses"].items():
                    if status.startswith("2") and answer.get("content"):
                        next(iter(answer["content"].values()))["example"] = example
                        break
    return schema


def operations_without_example(schema: dict[str, Any]) -> list[str]:
    """`METHOD path` of every operation whose answers show no example (tests use this)."""
    components = schema.get("components", {}).get("schemas", {})
    return [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if not _has_example(operation, components)
    ]
