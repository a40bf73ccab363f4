"""The OpenAPI document is one that client generators can use (issue 15).

tests/clients/run.sh generates real clients from it; these checks pin what it relies on.
"""

import json
import re
from typing import Any

import httpx
import pytest

from app.contracts.openapi import operation_ids, operations_without_example
from app.main import DOCUMENT_PARTS
from tests.conftest import STAFF


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/openapi.json")).json()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, o) for p, ops in spec["paths"].items() for m, o in ops.items()]


def _param(operation: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [p["schema"] for p in operation["parameters"] if p["name"] == name]
    return found


async def test_component_names_are_readable_and_unique(spec: dict[str, Any]) -> None:
    names = list(spec["components"]["schemas"])
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]*", name) for name in names), names
    assert {"JamboDetail", "LoyaltyDetail", "V3Detail"} <= set(names)


async def test_every_operation_has_its_chosen_id(spec: dict[str, Any]) -> None:
    found = {(m, p): o["operationId"] for m, p, o in _operations(spec)}
    assert found == operation_ids(DOCUMENT_PARTS)
    assert len(set(found.values())) == len(found)
    assert found[("get", "/api/v1/customers/{customer_id}")] == "v1_get_customer"
    assert found[("post", "/api/v1/loyalty/")] == "loyalty_create_members"


async def test_paging_parameters_are_integers(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert _param(paths["/api/customers"]["get"], "page")["type"] == "integer"
    assert _param(paths["/api/customers"]["get"], "page_size")["type"] == "integer"
    assert _param(paths["/api/v1/customers"]["get"], "pageNo") == {
        "title": "pageNo",
        "type": "integer",
        "minimum": 0,
    }
    assert _param(paths["/api/v1/customers"]["get"], "pageSize")["maximum"] == 1000
    loyalty_page = _param(paths["/api/v1/loyalty/"]["get"], "page")
    assert {"type": "string", "enum": ["last"]} in loyalty_page["anyOf"]
    last_updated = _param(paths["/api/v1/customers"]["get"], "lastUpdated")
    assert {"type": "string", "format": "date-time"} in last_updated["anyOf"]


async def test_paging_is_still_read_leniently(client: httpx.AsyncClient) -> None:
    """Only the document changed: each contract parses its pages as before."""
    jambo = await client.get("/api/customers?page_size=abc", headers=STAFF)
    assert jambo.status_code == 200
    v1 = await client.get("/api/v1/customers?pageSize=abc", headers=STAFF)
    assert v1.status_code == 400 and v1.json()["data"]["error"]


async def test_dates_timestamps_and_emails_carry_formats(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]

    def fmt(model: str, prop: str) -> str | None:
        schema = schemas[model]["properties"][prop]
        for branch in schema.get("anyOf", [schema]):
            if "format" in branch:
                return str(branch["format"])
        return None

    assert fmt("CustomerOut", "dob") == "date" and fmt("CustomerIn", "email") == "email"
    assert fmt("V1Customer", "lastUpdated") == "date-time"
    assert fmt("V1CustomerWrite", "dob") == "date"
    assert fmt("LoyaltyMemberWrite", "client_birthday") == "date"
    assert fmt("CustomerV3", "email") == "email"
    assert fmt("CustomerFormIn", "dob") == "date"
    assert fmt("ExportedCustomer", "dob") == "date"
    assert fmt("ExportedMembership", "client_birthday") == "date"
    assert fmt("CustomerExport", "exported_at") == "date-time"
    # The register's birthday is a date written with a fixed time: no format fits it, so the
    # document says what it is (and that it has no time zone) instead.
    birthday = schemas["LoyaltyMemberOut"]["properties"]["client_birthday"]
    assert fmt("LoyaltyMemberOut", "client_birthday") is None
    assert {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T00:00:00$"} in birthday["anyOf"]
    assert "no time zone" in birthday["description"]


async def test_the_v3_form_is_typed_for_generated_clients(spec: dict[str, Any]) -> None:
    """The field `type` is an enum, and the POST body a named schema (issue 21)."""
    schemas = spec["components"]["schemas"]
    assert schemas["FormField"]["properties"]["type"]["enum"] == [
        "string",
        "email",
        "phone",
        "date",
        "country",
        "choice",
    ]
    post = spec["paths"]["/api/v3/customer/update/"]["post"]["requestBody"]
    assert post["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CustomerFormIn"
    }
    assert set(schemas["CustomerFormIn"]["properties"]) >= {"first_name", "mobile", "dob"}


async def test_response_headers_are_declared(spec: dict[str, Any]) -> None:
    v1 = spec["paths"]["/api/v1/customers/{customer_id}"]
    assert v1["get"]["responses"]["200"]["headers"]["ETag"]["required"] is True
    assert "ETag" in v1["patch"]["responses"]["200"]["headers"]
    created = spec["paths"]["/api/v1/customers"]["post"]["responses"]["201"]["headers"]
    assert {"ETag", "Content-Location"} <= set(created)
    loyalty = spec["paths"]["/api/v1/loyalty/"]["post"]["responses"]["201"]["headers"]
    assert "Location" in loyalty
    for _method, _path, operation in _operations(spec):
        for status, answer in operation["responses"].items():
            assert "X-Request-ID" in answer["headers"]
            if status == "401":
                assert "WWW-Authenticate" in answer["headers"]
            if status == "503":
                assert "Retry-After" in answer["headers"]


async def test_bodies_are_named_and_json_comes_first(spec: dict[str, Any]) -> None:
    loyalty = spec["paths"]["/api/v1/loyalty/"]["post"]
    body = loyalty["requestBody"]["content"]["application/json"]["schema"]
    assert body == {
        "oneOf": [
            {"$ref": "#/components/schemas/LoyaltyMemberWrite"},
            {"$ref": "#/components/schemas/LoyaltyMemberBulk"},
        ]
    }
    assert list(loyalty["responses"]["201"]["content"]) == ["application/json", "text/html"]
    v1 = spec["paths"]["/api/v1/customers/{customer_id}"]
    write = spec["components"]["schemas"]["V1CustomerWrite"]
    assert write["required"] == ["firstName", "lastName"]
    assert "required" not in spec["components"]["schemas"]["V1CustomerPatch"]
    patch_media = v1["patch"]["requestBody"]["content"]
    assert {m["schema"]["$ref"] for m in patch_media.values()} == {
        "#/components/schemas/V1CustomerPatch"
    }
    assert v1["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/V1CustomerWrite"
    )


async def test_every_error_answer_has_a_body_schema(spec: dict[str, Any]) -> None:
    for method, path, operation in _operations(spec):
        if method == "head" or not path.startswith("/api/"):
            continue
        for status, answer in operation["responses"].items():
            if status >= "400":
                assert answer.get("content"), (method, path, status)


async def test_every_operation_has_an_example(spec: dict[str, Any]) -> None:
    assert operations_without_example(spec) == []
    confirm = spec["paths"]["/api/customer/{token}/delete/confirm"]
    for method in ("get", "post"):
        media = confirm[method]["responses"]["200"]["content"]["application/json"]
        assert media["example"]["body"] == "Customer deleted successfully"


async def test_redoc_fetches_nothing_from_outside(client: httpx.AsyncClient) -> None:
    """The page names no other host, and its policy stops the script's CDN logo."""
    redoc = await client.get("/redoc")
    assert redoc.status_code == 200
    assert not re.search(r"(https?:)?//[a-z]", redoc.text.replace('content="', "")), redoc.text
    policy = redoc.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "cdn." not in policy and "https:" not in policy
    script = await client.get("/static-offline-docs/redoc.standalone.js")
    assert script.status_code == 200


def _check_against(spec: dict[str, Any], schema: dict[str, Any], example: Any) -> None:
    """The example is valid under its schema (references into the document resolved)."""
    from jsonschema import Draft202012Validator

    Draft202012Validator({**schema, "components": spec["components"]}).validate(example)


async def test_every_example_fits_its_schema(spec: dict[str, Any]) -> None:
    """Answers' and components' examples alike, null values included."""
    for name, component in spec["components"]["schemas"].items():
        if "example" in component:
            try:
                _check_against(spec, {"$ref": f"#/components/schemas/{name}"}, component["example"])
            except Exception as exc:
                raise AssertionError((name, str(exc)[:300])) from None
    for method, path, operation in _operations(spec):
        for status, answer in operation["responses"].items():
            media = answer.get("content", {}).get("application/json", {})
            if "example" in media and "schema" in media:
                try:
                    _check_against(spec, media["schema"], media["example"])
                except Exception as exc:
                    raise AssertionError((method, path, status, str(exc)[:300])) from None


async def test_every_error_answer_shows_its_own_example(spec: dict[str, Any]) -> None:
    """A 400 shows a 400, not the 404's example (issue 21)."""
    for method, path, operation in _operations(spec):
        shown: dict[str, str] = {}
        for status, answer in operation["responses"].items():
            media = answer.get("content", {}).get("application/json")
            if status < "400" or media is None or not path.startswith("/api/"):
                continue
            example = media.get("example")
            assert example is not None, (method, path, status)
            if isinstance(example, dict):
                for key in ("status", "statusCode"):
                    assert example.get(key, int(status)) == int(status), (method, path, status)
            text = json.dumps(example, sort_keys=True)
            assert text not in shown.values(), (method, path, status, shown)
            shown[status] = text
    v1 = spec["paths"]["/api/v1/customers"]["post"]["responses"]
    assert v1["400"]["content"]["application/json"]["example"]["data"]["error"] == [
        "'firstName' must be between 1 and 30 characters",
        "'lastName' must be between 1 and 30 characters",
    ]


async def test_under_root_path_the_document_names_its_server_whatever_came_first(
    settings: Any,
) -> None:
    """A 405 (whose Allow header reads the document) before any /openapi.json request."""
    from app.main import create_app

    application = create_app(settings.model_copy(update={"root_path": "/jambo"}))
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        refused = await c.delete("/jambo/api/v1/customers", headers=STAFF)
        assert refused.status_code == 405
        spec = (await c.get("/jambo/openapi.json")).json()
    assert spec["servers"] == [{"url": "/jambo"}]
