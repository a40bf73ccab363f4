"""The auth matrix of every Jambo endpoint, with real minted tokens."""

import base64
import json
import time

import httpx
import pytest

from tests.conftest import JAMBO_CUSTOMER, ORIGIN, STAFF, auth, create_customer, make_token


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def alg_none_token(sub: str, role: str = "staff") -> str:
    now = int(time.time())
    claims = {
        "sub": sub,
        "role": role,
        "scope": "customers:read customers:write",
        "iat": now,
        "exp": now + 600,
        "iss": "jambo",
        "aud": "jambo-api",
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


BAD_TOKENS = {
    "expired": lambda sub, role: make_token(sub, role, exp_delta=-10),
    "bad_signature": lambda sub, role: make_token(sub, role, secret="another-secret-" + "y" * 30),
    "alg_none": alg_none_token,
    "wrong_audience": lambda sub, role: make_token(sub, role, aud="someone-else"),
    "wrong_issuer": lambda sub, role: make_token(sub, role, iss="evil"),
    "no_role": lambda sub, role: make_token(sub, role=None),
    "garbage": lambda sub, role: "not.a.jwt",
}

NEW_CUSTOMER = {**JAMBO_CUSTOMER, "email": "new@example.org"}

# (method, path template, body, who may: "staff:<scope>" or "self")
ENDPOINTS = [
    ("POST", "/api/customers", NEW_CUSTOMER, "staff:customers:write"),
    ("GET", "/api/customers", None, "staff:customers:read"),
    ("PUT", "/api/customers", JAMBO_CUSTOMER, "self"),
    ("GET", "/api/customer/{ulid}", None, "self|staff:customers:read"),
    ("PUT", "/api/customer/{ulid}", JAMBO_CUSTOMER, "staff:customers:write"),
    ("DELETE", "/api/customer/{ulid}", None, "staff:customers:write"),
    ("POST", "/api/customer/{ulid}/delete/request", {"origin": ORIGIN}, "self"),
]


async def call(client: httpx.AsyncClient, method: str, path: str, body, headers) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "who"), ENDPOINTS)
async def test_missing_token_is_401_with_challenge(client, method, path, body, who) -> None:
    customer = await create_customer(client)
    response = await call(client, method, path.format(ulid=customer["ulid"]), body, {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["statusCode"] == 401


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
@pytest.mark.parametrize(("method", "path", "body", "who"), ENDPOINTS)
async def test_bad_tokens_are_401_invalid_token(client, db, kind, method, path, body, who) -> None:
    customer = await create_customer(client)
    role = "customer" if who == "self" else "staff"
    sub = customer["ulid"] if role == "customer" else "staff-1"
    token = BAD_TOKENS[kind](sub, role)
    response = await call(client, method, path.format(ulid=customer["ulid"]), body, auth(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    row = await db.fetchrow("SELECT last_name, version FROM customers")
    assert (row["last_name"], row["version"]) == ("Norris", 1)
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


@pytest.mark.parametrize(("method", "path", "body", "who"), ENDPOINTS)
async def test_staff_without_the_scope_is_403(client, method, path, body, who) -> None:
    customer = await create_customer(client)
    token = make_token(scope="loyalty:read loyalty:write")
    response = await call(client, method, path.format(ulid=customer["ulid"]), body, auth(token))
    assert response.status_code == 403
    assert response.json() == {
        "statusCode": 403,
        "body": "You do not have permission to perform this action.",
    }


@pytest.mark.parametrize(("method", "path", "body", "who"), ENDPOINTS)
async def test_customer_token_on_staff_routes_is_403_and_self_routes_work(
    client, method, path, body, who
) -> None:
    customer = await create_customer(client)
    token = make_token(customer["ulid"], role="customer")
    response = await call(client, method, path.format(ulid=customer["ulid"]), body, auth(token))
    if "self" in who:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403


@pytest.mark.parametrize(("method", "path", "body", "who"), ENDPOINTS)
async def test_staff_with_the_scope_is_allowed_or_403_on_self_only(
    client, method, path, body, who
) -> None:
    customer = await create_customer(client)
    response = await call(client, method, path.format(ulid=customer["ulid"]), body, STAFF)
    if who == "self":
        assert response.status_code == 403
    else:
        assert response.status_code in (200, 201), response.text


async def test_customer_token_of_a_deleted_customer_is_401(client) -> None:
    customer = await create_customer(client)
    token = auth(make_token(customer["ulid"], role="customer"))
    await client.delete(f"/api/customer/{customer['ulid']}", headers=STAFF)
    for method, path, body in (
        ("GET", f"/api/customer/{customer['ulid']}", None),
        ("PUT", "/api/customers", JAMBO_CUSTOMER),
    ):
        response = await call(client, method, path, body, token)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_non_bearer_scheme_is_401(client) -> None:
    response = await client.get("/api/customers", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401
