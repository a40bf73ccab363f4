"""Customer Management API v1: wire format, errors, ETags, merge patch, list queries."""

import asyncio
import datetime as dt
import re
from typing import Any

import httpx
import pytest

from tests.conftest import (
    JAMBO_CUSTOMER,
    STAFF,
    auth,
    create_customer,
    customer_auth,
    make_token,
)

V1 = "/api/v1/customers"
UNKNOWN = "01HWJ8WH9X8WBK65EMGY9YKPBS"
LAST_UPDATED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
SEED_POST = {
    "firstName": "Fraser",
    "lastName": "Brendand",
    "address": {
        "addressLine1": "1 Jessie street",
        "addressLine2": "",
        "city": "Sydney",
        "state": "NSW",
        "postCode": "2145",
        "country": "Australia",
    },
}
EMPTY_ADDRESS = dict.fromkeys(
    ("addressLine1", "addressLine2", "city", "state", "postCode", "country")
)


def error(status: int, message: Any, path: str, method: str) -> dict[str, Any]:
    """The v1 error envelope, as seed 002 has it."""
    return {
        "success": False,
        "status": status,
        "data": {"error": message, "request": path, "method": method},
    }


def seed_part(body: dict[str, Any]) -> dict[str, Any]:
    """The envelope without `data.fields`, which is added (for forms) on 400s and field
    conflicts only and checked on its own; every other error is the seed's exactly."""
    data = dict(body["data"])
    if body["status"] == 400:
        data.pop("fields")
    elif body["status"] == 409:
        data.pop("fields", None)
    return {**body, "data": data}


async def v1_create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """Create through v1 and return the customer (the envelope's data)."""
    response = await client.post(
        V1, json={"firstName": "Amina", "lastName": "Okafor", **fields}, headers=STAFF
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


# ---------------------------------------------------------------- create


async def test_post_seed_example_is_201_envelope_with_content_location(
    client: httpx.AsyncClient, db
) -> None:
    response = await client.post(V1, json=SEED_POST, headers=STAFF)
    assert response.status_code == 201
    body = response.json()
    data = body["data"]
    assert body == {"success": True, "status": 201, "data": data}
    ulid = data["customerId"]
    assert len(ulid) == 26
    assert LAST_UPDATED.match(data["lastUpdated"])
    assert data == {
        "customerId": ulid,
        "firstName": "Fraser",
        "lastName": "Brendand",
        "middleName": None,
        "email": None,
        "phoneNumber": None,
        "nationality": None,
        "dob": None,
        "gender": None,
        "address": {**SEED_POST["address"], "addressLine2": None},
        "lastUpdated": data["lastUpdated"],
    }
    assert response.headers["content-location"] == f"{V1}/{ulid}"
    assert response.headers["etag"] == f'"{ulid}-1"'
    row = await db.fetchrow("SELECT * FROM customers")
    assert (row["first_name"], row["address_city"], row["address_post_code"]) == (
        "Fraser",
        "Sydney",
        "2145",
    )
    assert row["address_line2"] is None and row["version"] == 1


async def test_post_every_field_is_normalised_by_the_core(client: httpx.AsyncClient, db) -> None:
    data = await v1_create(
        client,
        middleName="  Wanjiru ",
        email="Amina@Example.ORG",
        phoneNumber="0712345678",
        nationality="Kenya",
        dob="1990-05-01",
        gender="female",
        customerId="ignored",
        lastUpdated="ignored",
    )
    assert data["middleName"] == "Wanjiru"
    assert data["email"] == "Amina@example.org"
    assert data["phoneNumber"] == "+254712345678"
    assert data["nationality"] == "KE"
    assert data["dob"] == "1990-05-01"
    assert data["gender"] == "female"
    assert data["address"] == EMPTY_ADDRESS
    assert await db.fetchval("SELECT nationality FROM customers") == "KE"


async def test_post_seed_400_example(client: httpx.AsyncClient, db) -> None:
    response = await client.post(V1, json={"firstName": "", "lastName": ""}, headers=STAFF)
    assert response.status_code == 400
    assert seed_part(response.json()) == error(
        400,
        [
            "'firstName' must be between 1 and 30 characters",
            "'lastName' must be between 1 and 30 characters",
        ],
        V1,
        "POST",
    )
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        ({"lastName": "Okafor"}, ["'firstName' must be between 1 and 30 characters"]),
        (
            {"firstName": None, "lastName": "x" * 30},
            ["'firstName' must be between 1 and 30 characters"],
        ),
        (
            {"firstName": "x" * 31, "lastName": "Okafor"},
            ["'firstName' must be between 1 and 30 characters"],
        ),
        (
            {"firstName": "   ", "lastName": "Okafor"},
            ["'firstName' must be between 1 and 30 characters"],
        ),
        (
            {"firstName": "A", "lastName": "B", "middleName": "m" * 31, "email": "nope"},
            [
                "'middleName' must be between 1 and 30 characters",
                "'email' must be a valid email address",
            ],
        ),
        ({"firstName": 42, "lastName": "B"}, ["'firstName' must be a string"]),
        (
            {"firstName": "A", "lastName": "B\x00"},
            ["'lastName' must not contain control characters"],
        ),
        (
            {"firstName": "A", "lastName": "B", "phoneNumber": "12"},
            ["'phoneNumber' must be a valid phone number"],
        ),
        (
            {"firstName": "A", "lastName": "B", "nationality": "Atlantis"},
            ["'nationality' must be an ISO 3166-1 country code or English country name"],
        ),
        (
            {"firstName": "A", "lastName": "B", "dob": "2999-01-01"},
            ["'dob' must not be in the future"],
        ),
        (
            {"firstName": "A", "lastName": "B", "dob": "1899-12-31"},
            ["'dob' must not be before 1900-01-01"],
        ),
        (
            {"firstName": "A", "lastName": "B", "dob": "03/12/1990"},
            ["'dob' must be a date in the format YYYY-MM-DD"],
        ),
        ({"firstName": "A", "lastName": "B", "address": "Sydney"}, ["'address' must be an object"]),
        (
            {"firstName": "A", "lastName": "B", "address": {"city": 7}},
            ["'address.city' must be a string"],
        ),
        (
            {"firstName": "A", "lastName": "B", "address": {"postCode": "9" * 21}},
            ["'address.postCode' must be at most 20 characters"],
        ),
        (
            ["not", "an", "object"],
            ["The request body must be a JSON object sent as application/json"],
        ),
    ],
)
async def test_post_validation_errors(
    client: httpx.AsyncClient, db, body: Any, messages: list[str]
) -> None:
    response = await client.post(V1, json=body, headers=STAFF)
    assert response.status_code == 400
    assert seed_part(response.json()) == error(400, messages, V1, "POST")
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_validation_errors_also_come_by_field_for_forms(client: httpx.AsyncClient) -> None:
    """`data.fields` beside the seed's `error` list (issue 21): each v1 name, address parts
    as `address.<part>`, with the message a form shows beside that field."""
    seed = await client.post(V1, json={"firstName": "", "lastName": ""}, headers=STAFF)
    assert seed.json()["data"]["fields"] == {
        "firstName": ["Must be between 1 and 30 characters"],
        "lastName": ["Must be between 1 and 30 characters"],
    }
    core = await client.post(
        V1,
        json={
            "firstName": "Amina",
            "lastName": "Okafor",
            "email": "no",
            "dob": "1850-01-01",
            "address": {"city": "x" * 101},
        },
        headers=STAFF,
    )
    assert core.status_code == 400
    data = core.json()["data"]
    assert data["fields"] == {
        "email": ["Must be a valid email address"],
        "dob": ["Must not be before 1900-01-01"],
        "address.city": ["Must be at most 100 characters"],
    }
    assert data["error"] == [
        "'email' must be a valid email address",
        "'dob' must not be before 1900-01-01",
        "'address.city' must be at most 100 characters",
    ]
    typed = await client.post(
        V1, json={"firstName": "A", "lastName": "B", "address": {"city": 5}}, headers=STAFF
    )
    assert typed.json()["data"]["fields"] == {"address.city": ["Must be a string"]}
    whole = await client.post(
        V1, content=b"[1]", headers={**STAFF, "Content-Type": "application/json"}
    )
    assert whole.status_code == 400 and whole.json()["data"]["fields"] == {}
    listing = await client.get(f"{V1}?sortBy=nickname&pageSize=0", headers=STAFF)
    assert set(listing.json()["data"]["fields"]) == {"sortBy", "pageSize"}


async def test_a_taken_email_is_a_field_error_too(client: httpx.AsyncClient) -> None:
    await v1_create(client, email="taken@example.org")
    again = await client.post(
        V1, json={"firstName": "A", "lastName": "B", "email": "taken@example.org"}, headers=STAFF
    )
    assert again.status_code == 409
    assert again.json()["data"]["fields"] == {
        "email": ["A customer with this email already exists."]
    }
    missing = await client.get(f"{V1}/{UNKNOWN}", headers=STAFF)
    assert "fields" not in missing.json()["data"]  # the seed's 404, exactly


async def test_post_malformed_or_missing_body(client: httpx.AsyncClient, db) -> None:
    headers = {**STAFF, "content-type": "application/json"}
    response = await client.post(V1, content=b'{"firstName": ', headers=headers)
    assert response.status_code == 400
    assert seed_part(response.json()) == error(
        400, ["JSON parse error: the request body is not valid JSON."], V1, "POST"
    )
    response = await client.post(V1, headers=STAFF)
    assert response.status_code == 400
    assert seed_part(response.json()) == error(
        400, ["A JSON object is required as the request body"], V1, "POST"
    )
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_lone_surrogates_are_400_not_500(client: httpx.AsyncClient, db) -> None:
    headers = {**STAFF, "content-type": "application/json"}
    body = b'{"firstName": "A", "lastName": "B", "address": {"city": "\\ud800"}}'
    response = await client.post(V1, content=body, headers=headers)
    assert response.status_code == 400
    assert seed_part(response.json()) == error(
        400, ["'address.city' must not contain control characters"], V1, "POST"
    )
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_post_duplicate_email_is_409_and_oversized_is_413(
    client: httpx.AsyncClient, db
) -> None:
    await v1_create(client, email="amina@example.org")
    response = await client.post(
        V1, json={"firstName": "A", "lastName": "B", "email": "AMINA@example.org"}, headers=STAFF
    )
    assert response.status_code == 409
    assert seed_part(response.json()) == error(
        409, "A customer with this email already exists.", V1, "POST"
    )
    big = {"firstName": "x" * (1024 * 1024 + 10), "lastName": "B"}
    response = await client.post(V1, json=big, headers=STAFF)
    assert response.status_code == 413
    assert seed_part(response.json()) == error(
        413, "Request body is larger than 1048576 bytes.", V1, "POST"
    )
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


# ---------------------------------------------------------------- read, ETag


async def test_get_is_bare_with_strong_etag_and_304(client: httpx.AsyncClient) -> None:
    created = await v1_create(client, email="amina@example.org")
    url = f"{V1}/{created['customerId']}"
    response = await client.get(url, headers=STAFF)
    assert response.status_code == 200
    assert response.json() == created
    etag = response.headers["etag"]
    assert etag == f'"{created["customerId"]}-1"'
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = await client.get(url, headers={**STAFF, "If-None-Match": header})
        assert cached.status_code == 304
        assert cached.content == b""
        assert cached.headers["cache-control"] == "max-age=0"
        assert cached.headers["etag"] == etag
    stale = await client.get(
        url, headers={**STAFF, "If-None-Match": f'"{created["customerId"]}-0"'}
    )
    assert stale.status_code == 200 and stale.json() == created
    lower = await client.get(url.lower(), headers=STAFF)
    assert lower.status_code == 200 and lower.json() == created


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("customer_id", [UNKNOWN, "899585", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ"])
async def test_unknown_or_invalid_id_is_404_envelope(
    client: httpx.AsyncClient, method: str, customer_id: str
) -> None:
    body = None if method in ("GET", "DELETE") else {"firstName": "A", "lastName": "B"}
    response = await client.request(method, f"{V1}/{customer_id}", json=body, headers=STAFF)
    assert response.status_code == 404
    assert seed_part(response.json()) == error(
        404, "Resource could not be located", f"{V1}/{customer_id}", method
    )


async def test_unmatched_path_and_method_in_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{V1}/{UNKNOWN}/orders", headers=STAFF)
    assert response.status_code == 404
    assert seed_part(response.json()) == error(
        404, "Resource could not be located", f"{V1}/{UNKNOWN}/orders", "GET"
    )
    response = await client.post(f"{V1}/{UNKNOWN}", json={}, headers=STAFF)
    assert response.status_code == 405
    assert seed_part(response.json()) == error(405, "Method not allowed", f"{V1}/{UNKNOWN}", "POST")


async def test_unexpected_error_is_500_envelope_without_details(app: Any) -> None:
    """A bug behind a v1 route: the seed's 500 envelope, no trace in the body."""
    from fastapi import APIRouter, FastAPI

    from app.contracts.routing import contract_route
    from app.contracts.v1.router import render

    broken = APIRouter(route_class=contract_route(render))

    @broken.delete(V1 + "/{customer_id}")
    async def explode(customer_id: str) -> None:
        raise RuntimeError("secret internals")

    probe = FastAPI()
    probe.state.settings = app.state.settings
    probe.include_router(broken)
    transport = httpx.ASGITransport(app=probe)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.delete(f"{V1}/44981")
    assert response.status_code == 500
    assert seed_part(response.json()) == error(
        500, "An internal server error has occured processing your request", f"{V1}/44981", "DELETE"
    )
    assert "secret" not in response.text


# ---------------------------------------------------------------- PUT, PATCH, DELETE


async def test_put_replaces_and_clears_absent_fields(client: httpx.AsyncClient, db) -> None:
    created = await v1_create(
        client, email="amina@example.org", dob="1990-05-01", **{"address": SEED_POST["address"]}
    )
    await db.execute("UPDATE customers SET passport_number = 'P123', language = 'sw'")
    url = f"{V1}/{created['customerId']}"
    response = await client.put(
        url,
        json={"firstName": "Fraser", "lastName": "Brendand", "address": {"city": "Wyong"}},
        headers=STAFF,
    )
    assert response.status_code == 200
    body = response.json()
    assert body == {
        **created,
        "firstName": "Fraser",
        "lastName": "Brendand",
        "email": None,
        "dob": None,
        "address": {**EMPTY_ADDRESS, "city": "Wyong"},
        "lastUpdated": body["lastUpdated"],
    }
    assert response.headers["etag"] == f'"{created["customerId"]}-2"'
    row = await db.fetchrow("SELECT * FROM customers")
    assert (row["email"], row["address_line1"], row["version"]) == (None, None, 2)
    # Fields v1 does not show are not v1's to clear.
    assert (row["passport_number"], row["language"]) == ("P123", "sw")


async def test_put_requires_both_names(client: httpx.AsyncClient, db) -> None:
    created = await v1_create(client)
    url = f"{V1}/{created['customerId']}"
    response = await client.put(url, json={"firstName": "Fraser"}, headers=STAFF)
    assert response.status_code == 400
    assert seed_part(response.json()) == error(
        400, ["'lastName' must be between 1 and 30 characters"], url, "PUT"
    )
    assert await db.fetchval("SELECT last_name FROM customers") == "Okafor"


async def test_patch_merges_nested_address_and_null_clears(client: httpx.AsyncClient, db) -> None:
    created = await v1_create(client, middleName="Wanjiru", address=SEED_POST["address"])
    url = f"{V1}/{created['customerId']}"
    # The seed's PATCH example: only the post code changes.
    response = await client.patch(url, json={"address": {"postCode": "2000"}}, headers=STAFF)
    assert response.status_code == 200
    body = response.json()
    assert body == {
        **created,
        "address": {**created["address"], "postCode": "2000"},
        "lastUpdated": body["lastUpdated"],
    }
    # null clears a member; absent members stay; merge-patch+json is accepted.
    response = await client.patch(
        url,
        content=b'{"middleName": null, "address": {"city": null}, "lastName": "Bell"}',
        headers={**STAFF, "content-type": "application/merge-patch+json"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["middleName"] is None and body["lastName"] == "Bell"
    assert body["firstName"] == "Amina"
    assert body["address"] == {**created["address"], "postCode": "2000", "city": None}
    # A null address clears every part.
    response = await client.patch(url, json={"address": None}, headers=STAFF)
    assert response.status_code == 200 and response.json()["address"] == EMPTY_ADDRESS
    row = await db.fetchrow("SELECT * FROM customers")
    assert row["address_line1"] is None and row["last_name"] == "Bell" and row["version"] == 4
    assert response.headers["etag"] == f'"{created["customerId"]}-4"'


async def test_empty_patch_changes_nothing(client: httpx.AsyncClient, db) -> None:
    created = await v1_create(client)
    url = f"{V1}/{created['customerId']}"
    for body in ({}, {"address": {}}, {"customerId": "x", "unknown": 1}):
        response = await client.patch(url, json=body, headers={**STAFF, "If-Match": "*"})
        assert response.status_code == 200
        assert response.json() == created
        assert response.headers["etag"] == f'"{created["customerId"]}-1"'
    stale = await client.patch(url, json={}, headers={**STAFF, "If-Match": '"nope"'})
    assert stale.status_code == 412
    assert await db.fetchval("SELECT version FROM customers") == 1


async def test_form_encoded_body_is_400(client: httpx.AsyncClient, db) -> None:
    response = await client.post(
        V1,
        content=b'{"firstName": "A", "lastName": "B"}',
        headers={**STAFF, "content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert seed_part(response.json()) == error(
        400, ["The request body must be a JSON object sent as application/json"], V1, "POST"
    )
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_patch_cannot_clear_a_required_name(client: httpx.AsyncClient, db) -> None:
    created = await v1_create(client)
    url = f"{V1}/{created['customerId']}"
    response = await client.patch(url, json={"firstName": None, "dob": "x"}, headers=STAFF)
    assert response.status_code == 400
    assert seed_part(response.json()) == error(
        400,
        [
            "'firstName' must be between 1 and 30 characters",
            "'dob' must be a date in the format YYYY-MM-DD",
        ],
        url,
        "PATCH",
    )
    assert (await db.fetchrow("SELECT first_name, version FROM customers"))["version"] == 1


async def test_patch_to_a_taken_email_is_409(client: httpx.AsyncClient, db) -> None:
    await v1_create(client, email="amina@example.org")
    other = await v1_create(client, email="bell@example.org")
    url = f"{V1}/{other['customerId']}"
    response = await client.patch(url, json={"email": "Amina@example.org"}, headers=STAFF)
    assert response.status_code == 409
    assert seed_part(response.json()) == error(
        409, "A customer with this email already exists.", url, "PATCH"
    )


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_if_match_stale_is_412_and_nothing_changes(
    client: httpx.AsyncClient, db, method: str
) -> None:
    created = await v1_create(client)
    other = await v1_create(client, firstName="Zawadi")
    url = f"{V1}/{created['customerId']}"
    body = None if method == "DELETE" else {"firstName": "Changed", "lastName": "Okafor"}
    for stale in (
        f'"{created["customerId"]}-0"',
        f'W/"{created["customerId"]}-1"',  # weak tags never match If-Match
        f'"{other["customerId"]}-1"',
        "garbage",
    ):
        response = await client.request(
            method, url, json=body, headers={**STAFF, "If-Match": stale}
        )
        assert response.status_code == 412
        assert seed_part(response.json()) == error(
            412, "The customer has changed since the ETag you sent; fetch it again", url, method
        )
    row = await db.fetchrow("SELECT first_name, version FROM customers WHERE first_name='Amina'")
    assert (row["first_name"], row["version"]) == ("Amina", 1)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_if_match_current_succeeds(client: httpx.AsyncClient, db, method: str) -> None:
    created = await v1_create(client)
    url = f"{V1}/{created['customerId']}"
    etag = (await client.get(url, headers=STAFF)).headers["etag"]
    body = None if method == "DELETE" else {"firstName": "Changed", "lastName": "Okafor"}
    for template in ("{}", '"stale", {}'):
        if_match = template.format(etag)
        response = await client.request(
            method, url, json=body, headers={**STAFF, "If-Match": if_match}
        )
        if method == "DELETE":
            assert response.status_code == 204 and response.content == b""
            assert await db.fetchval("SELECT count(*) FROM customers") == 0
            return
        assert response.status_code == 200
        assert response.json()["firstName"] == "Changed"
        etag = response.headers["etag"]
    response = await client.request(method, url, json=body, headers={**STAFF, "If-Match": "*"})
    assert response.status_code == 200
    assert await db.fetchval("SELECT version FROM customers") == 4


async def test_concurrent_writers_with_the_same_etag_exactly_one_wins(
    client: httpx.AsyncClient, db
) -> None:
    created = await v1_create(client)
    url = f"{V1}/{created['customerId']}"
    etag = (await client.get(url, headers=STAFF)).headers["etag"]
    headers = {**STAFF, "If-Match": etag}
    responses = await asyncio.gather(
        *(client.patch(url, json={"lastName": f"Writer{i}"}, headers=headers) for i in range(4))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 412, 412, 412]
    winner = next(r for r in responses if r.status_code == 200).json()["lastName"]
    row = await db.fetchrow("SELECT last_name, version FROM customers")
    assert (row["last_name"], row["version"]) == (winner, 2)


async def test_concurrent_put_and_delete_with_the_same_etag(client: httpx.AsyncClient, db) -> None:
    created = await v1_create(client)
    url = f"{V1}/{created['customerId']}"
    headers = {**STAFF, "If-Match": f'"{created["customerId"]}-1"'}
    put, delete = await asyncio.gather(
        client.put(url, json={"firstName": "A", "lastName": "B"}, headers=headers),
        client.delete(url, headers=headers),
    )
    assert sorted((put.status_code, delete.status_code)) in ([204, 404], [200, 412])
    count = await db.fetchval("SELECT count(*) FROM customers")
    assert count == (0 if delete.status_code == 204 else 1)


async def test_delete_is_204_without_body_and_removes_the_customer(
    client: httpx.AsyncClient, db
) -> None:
    created = await v1_create(client)
    url = f"{V1}/{created['customerId']}"
    response = await client.delete(url, headers=STAFF)
    assert response.status_code == 204
    assert response.content == b""
    assert await db.fetchval("SELECT count(*) FROM customers") == 0
    audit = await db.fetchrow(
        "SELECT action, subject_id FROM audit_events WHERE action = 'customer.deleted'"
    )
    assert (audit["action"], audit["subject_id"]) == ("customer.deleted", created["customerId"])
    again = await client.delete(url, headers=STAFF)
    assert again.status_code == 404
    assert seed_part(again.json()) == error(404, "Resource could not be located", url, "DELETE")


# ---------------------------------------------------------------- auth


async def test_401_is_plain_with_www_authenticate(client: httpx.AsyncClient) -> None:
    response = await client.get(V1)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response.headers["www-authenticate"] == "Bearer"
    bad = auth(make_token(secret="wrong-secret-" + "y" * 40))
    response = await client.post(V1, json=SEED_POST, headers=bad)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_scopes_and_customer_tokens(client: httpx.AsyncClient, db) -> None:
    created = await v1_create(client)
    url = f"{V1}/{created['customerId']}"
    reader = auth(make_token(scope="customers:read"))
    writer = auth(make_token(scope="customers:write"))
    own = customer_auth(created["customerId"])
    denied = "You do not have permission to perform this action"
    body = {"firstName": "A", "lastName": "B"}
    for method, path, headers in (
        ("GET", V1, own),
        ("GET", url, own),
        ("PATCH", url, own),
        ("GET", V1, writer),
        ("GET", url, writer),
        ("POST", V1, reader),
        ("PUT", url, reader),
        ("PATCH", url, reader),
        ("DELETE", url, reader),
        ("GET", V1, auth(make_token(scope="loyalty:read loyalty:write"))),
    ):
        response = await client.request(
            method, path, json=None if method in ("GET", "DELETE") else body, headers=headers
        )
        assert response.status_code == 403, (method, path)
        assert seed_part(response.json()) == error(403, denied, path, method)
    assert (await client.get(url, headers=reader)).status_code == 200
    assert (await client.get(V1, headers=reader)).status_code == 200
    assert (await client.patch(url, json={"gender": "f"}, headers=writer)).status_code == 200
    assert await db.fetchval("SELECT version FROM customers") == 2


# ---------------------------------------------------------------- cross-contract


async def test_created_via_jambo_read_and_edited_via_v1_seen_via_jambo(
    client: httpx.AsyncClient,
) -> None:
    jambo = await create_customer(client)
    url = f"{V1}/{jambo['ulid']}"
    response = await client.get(url, headers=STAFF)
    assert response.status_code == 200
    v1 = response.json()
    assert v1 == {
        "customerId": jambo["ulid"],
        "firstName": "Cynthia",
        "lastName": "Norris",
        "middleName": "Alexander",
        "email": "aaron97@example.org",
        "phoneNumber": "+254712345678",
        "nationality": "LS",
        "dob": "1912-09-06",
        "gender": None,
        "address": EMPTY_ADDRESS,
        "lastUpdated": v1["lastUpdated"],
    }
    patched = await client.patch(
        url,
        json={"lastName": "Akama", "nationality": "KEN", "address": {"city": "Nairobi"}},
        headers={**STAFF, "If-Match": response.headers["etag"]},
    )
    assert patched.status_code == 200
    seen = (await client.get(f"/api/customer/{jambo['ulid']}", headers=STAFF)).json()
    assert seen == {
        "statusCode": 200,
        "body": {**jambo, "last_name": "Akama", "nationality": "Kenya"},
    }
    listed = (await client.get(f"{V1}?address.city=nairobi", headers=STAFF)).json()
    assert [c["customerId"] for c in listed["data"]["customers"]] == [jambo["ulid"]]
    created = await v1_create(
        client,
        email="v1@example.org",
        nationality="KE",
        dob="1990-01-02",
        phoneNumber="+254700000001",
    )
    via_jambo = (await client.get(f"/api/customer/{created['customerId']}", headers=STAFF)).json()
    assert via_jambo["body"]["ulid"] == created["customerId"]
    assert (
        via_jambo["body"]["first_name"] == "Amina" and via_jambo["body"]["nationality"] == "Kenya"
    )
    assert JAMBO_CUSTOMER["email"] == "aaron97@example.org"


# ---------------------------------------------------------------- list

PEOPLE: list[dict[str, Any]] = [
    {
        "firstName": "Amina",
        "lastName": "Okafor",
        "email": "amina@example.org",
        "dob": "1990-05-01",
        "nationality": "KE",
        "address": {
            "addressLine1": "1 George Street",
            "addressLine2": "Suite 5",
            "city": "Sydney",
            "postCode": "2000",
        },
    },
    {
        "firstName": "amina",
        "lastName": "Bell",
        "email": "amina.bell@example.org",
        "dob": "1985-01-20",
        "nationality": "AU",
        "address": {"addressLine1": "9 Mountain Street", "city": "Potts Point", "postCode": "2011"},
    },
    {
        "firstName": "Raymond",
        "lastName": "Johnson",
        "nationality": "GB",
        "address": {
            "addressLine1": "4/5 Dover Heights",
            "addressLine2": "Mountain Street Annex",
            "city": "Bellevue Hill",
            "postCode": "2145",
        },
    },
    {
        "firstName": "Albert",
        "lastName": "Steve",
        "email": "albert@example.org",
        "dob": "1972-11-30",
        "address": {"addressLine1": "1 Delhi Road", "city": "North Ryde", "postCode": "2113"},
    },
    {
        "firstName": "Zawadi",
        "lastName": "bell",
        "email": "Zawadi@example.org",
        "dob": "2001-02-03",
        "nationality": "KE",
        "address": {"addressLine1": "10 Moi Avenue", "city": "nairobi", "postCode": "00100"},
    },
    {
        "firstName": "Fraser",
        "lastName": "Brendand",
        "email": "fraser@example.org",
        "dob": "1990-05-01",
        "nationality": "AU",
        "address": {"addressLine1": "1 Jessie street", "city": "50%_Off Town", "postCode": "214"},
    },
    {"firstName": "Neema", "lastName": "Okafor"},
]
# updated_at per person (index into PEOPLE), with ties to exercise the id tiebreak.
UPDATED = [
    "2017-12-03T10:15:30+00:00",
    "2018-01-01T00:00:00+00:00",
    "2017-12-03T10:15:30+00:00",
    "2016-06-01T08:00:00+00:00",
    "2019-03-04T05:06:07+00:00",
    "2018-01-01T00:00:00+00:00",
    "2020-01-01T00:00:00+00:00",
]


@pytest.fixture
async def people(client: httpx.AsyncClient, db) -> list[dict[str, Any]]:
    """PEOPLE created through v1 (in order), with known lastUpdated values."""
    out = []
    for person, stamp in zip(PEOPLE, UPDATED, strict=True):
        created = await v1_create(client, **person)
        await db.execute(
            "UPDATE customers SET updated_at = $1 WHERE first_name = $2 AND last_name = $3",
            dt.datetime.fromisoformat(stamp),
            person["firstName"],
            person["lastName"],
        )
        out.append({**created, "lastUpdated": stamp})
    return out


async def listing(client: httpx.AsyncClient, query: str = "", status: int = 200) -> Any:
    response = await client.get(f"{V1}{'?' if query else ''}{query}", headers=STAFF)
    assert response.status_code == status, response.text
    return response.json()


def ids(body: dict[str, Any]) -> list[str]:
    return [c["customerId"] for c in body["data"]["customers"]]


async def test_list_envelope_and_default_order(
    client: httpx.AsyncClient, people: list[dict[str, Any]]
) -> None:
    body = await listing(client)
    assert body == {
        "success": True,
        "status": 200,
        "data": {
            "pageSize": 100,
            "pageNo": 0,
            "totalPages": 1,
            "first": True,
            "last": True,
            "totalElements": 7,
            "customers": people,  # creation order, every field as GET shows it
        },
    }


async def test_list_empty_store(client: httpx.AsyncClient) -> None:
    body = await listing(client)
    assert body["data"] == {
        "pageSize": 100,
        "pageNo": 0,
        "totalPages": 0,
        "first": True,
        "last": True,
        "totalElements": 0,
        "customers": [],
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("firstName=AMINA", [0, 1]),
        ("firstName=amin", []),
        ("firstName=%20Amina%20", [0, 1]),
        ("lastName=bell", [1, 4]),
        ("lastName=Okafor", [0, 6]),
        ("address.streetLine1=mountain", [1]),
        ("address.streetLine1=STREET", [0, 1, 5]),
        ("address.streetLine1=delhi,%20moi", [3, 4]),
        ("address.streetLine2=Mountain%20Street", [2]),
        ("address.streetLine2=suite", [0]),
        ("address.city=Sydney,%20Bellevue%20Hill,%20Potts%20Point", [0, 1, 2]),
        ("address.city=NAIROBI", [4]),
        ("address.city=ryde", [3]),
        ("address.city=%25", [5]),
        ("address.city=_", [5]),
        ("address.city=0%25_o", [5]),
        ("address.city=", [0, 1, 2, 3, 4, 5, 6]),
        ("address.postCode=2000,%20214", [0, 5]),
        ("address.postCode=214", [5]),
        ("address.postCode=21", []),
        ("address.postCode=00100", [4]),
        ("lastUpdated=2018-01-01T00:00:00%2B00:00", [1, 4, 5, 6]),
        ("lastUpdated=2018-01-01T03:00:00%2B03:00", [1, 4, 5, 6]),
        ("lastUpdated=2018-01-01T00:00:01Z", [4, 6]),
        ("lastUpdated=2017-12-03T21:15:30+11:00", [0, 1, 2, 4, 5, 6]),  # '+' arrives as ' '
        ("lastUpdated=2021-01-01T00:00:00Z", []),
        ("lastUpdated=0001-01-01T00:00:00Z", [0, 1, 2, 3, 4, 5, 6]),
        # Combined: every condition must hold.
        ("firstName=amina&address.city=sydney,potts", [0, 1]),
        ("firstName=amina&lastName=bell", [1]),
        ("lastName=okafor&lastUpdated=2019-01-01T00:00:00Z", [6]),
        (
            "address.streetLine1=street&address.postCode=2011,214&lastUpdated=2018-01-01T00:00:00Z",
            [1, 5],
        ),
        ("address.city=hill&address.streetLine2=annex&address.streetLine1=dover", [2]),
        ("address.city=hill&address.streetLine2=suite", []),
    ],
)
async def test_list_filters(
    client: httpx.AsyncClient, people: list[dict[str, Any]], query: str, expected: list[int]
) -> None:
    body = await listing(client, query)
    assert ids(body) == [people[i]["customerId"] for i in expected]
    assert body["data"]["totalElements"] == len(expected)


def _key(customer: dict[str, Any], field: str) -> Any:
    value = customer["address"][field[8:]] if field.startswith("address.") else customer[field]
    if field in ("firstName", "lastName", "email", "address.city") and value is not None:
        value = value.lower()
    return value


def expected_order(people: list[dict[str, Any]], keys: list[tuple[str, bool]]) -> list[str]:
    """The documented order: each key (lower-cased text, NULLs largest), then the id."""
    rows = sorted(people, key=lambda c: c["customerId"], reverse=keys[-1][1] if keys else False)
    for field, descending in reversed(keys):
        rows.sort(key=lambda c: (_key(c, field) is None, _key(c, field)), reverse=descending)
    return [c["customerId"] for c in rows]


SORTABLE = [
    "customerId",
    "firstName",
    "lastName",
    "email",
    "dob",
    "nationality",
    "lastUpdated",
    "address.city",
    "address.postCode",
]


@pytest.mark.parametrize("field", SORTABLE)
@pytest.mark.parametrize("direction", ["", ":asc", ":desc", ":DESC"])
async def test_list_sorted_by_each_field(
    client: httpx.AsyncClient, people: list[dict[str, Any]], field: str, direction: str
) -> None:
    body = await listing(client, f"sortBy={field}{direction}")
    expected = expected_order(people, [(field, direction.lower() == ":desc")])
    assert ids(body) == expected


@pytest.mark.parametrize(
    "sort_by",
    [
        "firstName,lastName",
        "firstName:desc,lastName",
        "firstName,lastName:desc",
        "lastName:desc,firstName:desc",
        "nationality,dob:desc",
        "lastUpdated:desc,address.city",
        "address.postCode:desc,firstName",
    ],
)
async def test_list_sorted_by_several_fields(
    client: httpx.AsyncClient, people: list[dict[str, Any]], sort_by: str
) -> None:
    keys = [(k.split(":")[0], k.endswith(":desc")) for k in sort_by.split(",")]
    body = await listing(client, f"sortBy={sort_by}")
    assert ids(body) == expected_order(people, keys)


async def test_list_sort_spot_checks(
    client: httpx.AsyncClient, people: list[dict[str, Any]]
) -> None:
    """The documented rules, written out: case-insensitive, id tiebreak, NULLs largest."""
    names = [
        (c["firstName"], c["lastName"])
        for c in (await listing(client, "sortBy=firstName,lastName:desc"))["data"]["customers"]
    ]
    assert names == [
        ("Albert", "Steve"),
        ("Amina", "Okafor"),
        ("amina", "Bell"),
        ("Fraser", "Brendand"),
        ("Neema", "Okafor"),
        ("Raymond", "Johnson"),
        ("Zawadi", "bell"),
    ]
    emails = [c["email"] for c in (await listing(client, "sortBy=email"))["data"]["customers"]]
    assert emails == [
        "albert@example.org",
        "amina.bell@example.org",
        "amina@example.org",
        "fraser@example.org",
        "Zawadi@example.org",
        None,
        None,
    ]
    tied = ids(await listing(client, "sortBy=lastUpdated:desc&lastUpdated=2018-01-01T00:00:00Z"))
    assert tied == [
        people[6]["customerId"],
        people[4]["customerId"],
        people[5]["customerId"],
        people[1]["customerId"],
    ]


async def test_list_paging_edges(client: httpx.AsyncClient, people: list[dict[str, Any]]) -> None:
    order = expected_order(people, [("firstName", False)])
    pages = []
    for number in range(4):
        body = await listing(client, f"sortBy=firstName&pageSize=3&pageNo={number}")
        data = body["data"]
        assert (data["pageSize"], data["pageNo"], data["totalPages"], data["totalElements"]) == (
            3,
            number,
            3,
            7,
        )
        assert (data["first"], data["last"]) == (number == 0, number >= 2)
        pages.append(ids(body))
    assert pages == [order[0:3], order[3:6], order[6:7], []]  # the fourth is past the end
    whole = await listing(client, "pageSize=7")
    assert whole["data"]["totalPages"] == 1 and whole["data"]["last"] is True
    one = await listing(client, "pageSize=1&pageNo=6")
    assert ids(one) == [people[6]["customerId"]] and one["data"]["last"] is True
    far = await listing(client, "pageSize=1000&pageNo=999999999")
    assert far["data"]["customers"] == [] and far["data"]["totalElements"] == 7
    filtered_past = await listing(client, "firstName=amina&pageNo=1&pageSize=2")
    assert filtered_past["data"]["customers"] == []
    assert filtered_past["data"]["totalElements"] == 2


@pytest.mark.parametrize(
    ("query", "messages"),
    [
        ("pageSize=0", ["'pageSize' must be a whole number between 1 and 1000"]),
        ("pageSize=1001", ["'pageSize' must be a whole number between 1 and 1000"]),
        ("pageSize=abc", ["'pageSize' must be a whole number between 1 and 1000"]),
        ("pageSize=2.5", ["'pageSize' must be a whole number between 1 and 1000"]),
        ("pageNo=-1", ["'pageNo' must be a whole number, 0 or more"]),
        ("pageNo=1e3", ["'pageNo' must be a whole number, 0 or more"]),
        ("pageNo=99999999999999999999", ["'pageNo' must be a whole number, 0 or more"]),
        ("pageNo=%C2%B2", ["'pageNo' must be a whole number, 0 or more"]),  # "²"
        ("pageNo=--1", ["'pageNo' must be a whole number, 0 or more"]),
        (
            "sortBy=firstName,password",
            [
                "'sortBy' cannot sort by 'password'; use one of customerId, firstName, lastName, "
                "email, dob, nationality, lastUpdated, address.city, address.postCode"
            ],
        ),
        ("sortBy=" + ",".join(["email"] * 19), ["'sortBy' must name at most 9 fields"]),
        ("sortBy=firstName:up", ["'sortBy' direction of 'firstName' must be asc or desc"]),
        (
            "lastUpdated=yesterday",
            [
                "'lastUpdated' must be an ISO 8601 timestamp with an offset, "
                "e.g. 2017-12-03T10:15:30+11:00"
            ],
        ),
        (
            "lastUpdated=2017-12-03T10:15:30",
            [
                "'lastUpdated' must be an ISO 8601 timestamp with an offset, "
                "e.g. 2017-12-03T10:15:30+11:00"
            ],
        ),
        (
            "lastUpdated=0001-01-01T00:00:00%2B01:00",
            [
                "'lastUpdated' must be an ISO 8601 timestamp with an offset, "
                "e.g. 2017-12-03T10:15:30+11:00"
            ],
        ),
        ("firstName=A%00B", ["'firstName' must not contain control characters"]),
        ("address.city=" + "x" * 101, ["'address.city' must be at most 100 characters"]),
        (
            "address.postCode=" + ",".join(str(i) for i in range(21)),
            ["'address.postCode' must list at most 20 values"],
        ),
        (
            "pageNo=x&pageSize=0&sortBy=nope",
            [
                "'pageNo' must be a whole number, 0 or more",
                "'pageSize' must be a whole number between 1 and 1000",
                "'sortBy' cannot sort by 'nope'; use one of customerId, firstName, lastName, "
                "email, dob, nationality, lastUpdated, address.city, address.postCode",
            ],
        ),
    ],
)
async def test_list_bad_parameters_are_400(
    client: httpx.AsyncClient, query: str, messages: list[str]
) -> None:
    body = await listing(client, query, status=400)
    assert seed_part(body) == error(400, messages, V1, "GET")


async def test_last_updated_round_trips_as_a_filter(client: httpx.AsyncClient) -> None:
    created = await v1_create(client)
    stamp = created["lastUpdated"]
    assert LAST_UPDATED.match(stamp)
    body = await listing(client, "lastUpdated=" + stamp.replace("+", "%2B"))
    assert ids(body) == [created["customerId"]]
    body = await listing(client, "lastUpdated=" + stamp)  # unencoded '+'
    assert ids(body) == [created["customerId"]]


async def test_openapi_documents_every_v1_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    item = spec["paths"]["/api/v1/customers/{customer_id}"]
    collection = spec["paths"]["/api/v1/customers"]
    operations = [
        collection["get"],
        collection["post"],
        *(item[m] for m in ("get", "put", "patch", "delete")),
    ]
    for op in operations:
        assert op["tags"] == ["Customer Management API v1"]
        assert op["summary"]
        assert {"401", "403", "500"} <= set(op["responses"])
    assert "304" in item["get"]["responses"] and "412" in item["patch"]["responses"]
    content = item["patch"]["requestBody"]["content"]
    for media in ("application/json", "application/merge-patch+json"):
        ref = content[media]["schema"]["$ref"].rsplit("/", 1)[1]
        assert "firstName" in spec["components"]["schemas"][ref]["properties"]
    params = {p["name"] for p in collection["get"]["parameters"]}
    assert {"firstName", "address.city", "address.postCode", "pageNo", "sortBy"} <= params
