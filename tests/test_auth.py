"""Token endpoint, bearer-token matrix, customer sign-in by e-mailed code (real SMTP)."""

import base64
import json
import re
import time
from typing import Any

import httpx
import pytest
from jose import jwt

from tests.conftest import JWT_SECRET, auth, create_customer, make_token

TOKEN, EMAIL_CODE, ME = "/api/auth/token", "/api/auth/email-code", "/api/v3/customer/"
GRANT = "urn:jambo:email-code"
EMAIL = "aaron97@example.org"
CODE = re.compile(r"\b(\d{6})\b")
INVALID_CLIENT = {"error": "invalid_client"}
INVALID_GRANT = {"error": "invalid_grant"}
SENT = {"detail": "If the address is known, a code has been sent."}


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
async def api_client(app: Any, client: httpx.AsyncClient) -> tuple[str, str]:
    """A registered client with customers:read and customers:write."""
    client_id, secret = await app.state.services.auth.create_client(
        "shop frontend", ["customers:read", "customers:write"]
    )
    return client_id, secret


# --- client credentials ---


async def test_client_credentials_in_the_form(client, api_client, db) -> None:
    client_id, secret = api_client
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    response = await client.post(TOKEN, data=form)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"]) == ("bearer", 3600)
    assert body["scope"] == "customers:read customers:write"
    claims = jwt.decode(
        body["access_token"], JWT_SECRET, algorithms=["HS256"], audience="jambo-api"
    )
    assert (claims["sub"], claims["role"], claims["iss"]) == (client_id, "staff", "jambo")
    listed = await client.get("/api/customers", headers=auth(body["access_token"]))
    assert listed.status_code == 200
    row = await db.fetchrow("SELECT secret_hash, revoked FROM api_clients")
    assert secret not in row["secret_hash"] and row["revoked"] is False


async def test_client_credentials_with_http_basic_and_narrowed_scope(client, api_client) -> None:
    client_id, secret = api_client
    form = {"grant_type": "client_credentials", "scope": "customers:read"}
    response = await client.post(TOKEN, data=form, headers=basic(client_id, secret))
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert response.json()["scope"] == "customers:read"
    assert (await client.get("/api/customers", headers=auth(token))).status_code == 200
    write = await client.post("/api/customers", json={}, headers=auth(token))
    assert write.status_code == 403
    wider = {"grant_type": "client_credentials", "scope": "loyalty:write"}
    refused = await client.post(TOKEN, data=wider, headers=basic(client_id, secret))
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_scope")
    assert "jambo clients list" in refused.json()["error_description"]  # says what to do


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_id": "ID", "client_secret": "wrong"},
        {"client_id": "nobody", "client_secret": "SECRET"},
        {"client_id": "ID"},
        {},
        {"client_id": "I\x00D", "client_secret": "SECRET"},
        {"client_id": "ID" * 500, "client_secret": "SECRET"},
    ],
)
async def test_bad_client_credentials_are_401_invalid_client(client, api_client, credentials):
    client_id, secret = api_client
    form = {k: v.replace("ID", client_id).replace("SECRET", secret) for k, v in credentials.items()}
    response = await client.post(TOKEN, data={"grant_type": "client_credentials", **form})
    assert response.status_code == 401
    assert response.json() == INVALID_CLIENT
    assert response.headers["www-authenticate"] == 'Basic realm="jambo"'


async def test_bad_basic_credentials_are_401(client, api_client) -> None:
    client_id, _ = api_client
    for headers in (basic(client_id, "wrong"), {"Authorization": "Basic !!notbase64"}):
        response = await client.post(
            TOKEN, data={"grant_type": "client_credentials"}, headers=headers
        )
        assert (response.status_code, response.json()) == (401, INVALID_CLIENT)


async def test_revoked_client_gets_no_token(client, api_client, db) -> None:
    client_id, secret = api_client
    await db.execute("UPDATE api_clients SET revoked = true WHERE client_id = $1", client_id)
    response = await client.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
    )
    assert (response.status_code, response.json()) == (401, INVALID_CLIENT)


async def test_client_inserted_directly_in_the_db(client, db) -> None:
    from app.auth.service import hash_secret

    await db.execute(
        "INSERT INTO api_clients (client_id, secret_hash, name, scopes)"
        " VALUES ('ops', $1, 'ops', 'loyalty:read')",
        hash_secret("s3cret"),
    )
    response = await client.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers=basic("ops", "s3cret")
    )
    assert response.status_code == 200 and response.json()["scope"] == "loyalty:read"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "unsupported_grant_type"),
        ({"client_id": "x", "client_secret": "y"}, "unsupported_grant_type"),
    ],
)
async def test_unsupported_grants_are_400(client, data, expected) -> None:
    response = await client.post(TOKEN, data=data)
    assert (response.status_code, response.json()["error"]) == (400, expected)
    assert response.json()["error_description"] == (
        "grant_type must be client_credentials or urn:jambo:email-code."
    )


async def test_token_endpoint_wants_form_encoding(client, api_client) -> None:
    client_id, secret = api_client
    body = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    response = await client.post(TOKEN, json=body)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Use form encoding.",
    }


# --- bearer-token matrix on a customer-only route ---


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def alg_none(sub: str) -> str:
    now = int(time.time())
    claims = {"sub": sub, "role": "customer", "iat": now, "exp": now + 600,
              "iss": "jambo", "aud": "jambo-api"}  # fmt: skip
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


BAD = {
    "expired": lambda sub: make_token(sub, role="customer", exp_delta=-10),
    "bad_signature": lambda sub: make_token(sub, role="customer", secret="other-" + "k" * 40),
    "alg_none": alg_none,
    "wrong_audience": lambda sub: make_token(sub, role="customer", aud="someone-else"),
    "wrong_issuer": lambda sub: make_token(sub, role="customer", iss="evil"),
    "no_exp": lambda sub: make_token(sub, role="customer", exp=None),
    "unknown_role": lambda sub: make_token(sub, role="admin"),
    "hs512_not_allowed": lambda sub: make_token(sub, role="customer", algorithm="HS512"),
    "garbage": lambda sub: "not.a.jwt",
}


async def test_no_token_is_401_with_bearer_challenge(client) -> None:
    response = await client.get(ME)
    assert response.status_code == 401
    assert response.json() == {"detail": "Customer not authenticated"}
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("kind", sorted(BAD))
async def test_bad_tokens_are_401_invalid_token(client, kind) -> None:
    customer = await create_customer(client)
    good = await client.get(ME, headers=auth(make_token(customer["ulid"], role="customer")))
    assert good.status_code == 200
    response = await client.get(ME, headers=auth(BAD[kind](customer["ulid"])))
    assert response.status_code == 401
    assert response.json() == {"detail": "Customer not authenticated"}
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer   ", "Token abc"])
async def test_malformed_authorization_headers_are_401(client, header) -> None:
    response = await client.get(ME, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


# --- customer sign-in by e-mailed code (real SMTP server) ---


async def ask_code(client: httpx.AsyncClient, mailbox, email: str = EMAIL) -> str:
    before = len(mailbox.messages)
    response = await client.post(EMAIL_CODE, json={"email": email})
    assert (response.status_code, response.json()) == (202, SENT)
    assert len(mailbox.messages) == before + 1
    match = CODE.search(mailbox.body())
    assert match, mailbox.body()
    return match.group(1)


async def redeem(client: httpx.AsyncClient, code: str, email: str = EMAIL) -> httpx.Response:
    return await client.post(TOKEN, data={"grant_type": GRANT, "email": email, "code": code})


async def test_sign_in_end_to_end(client, mailbox, db) -> None:
    customer = await create_customer(client)
    code = await ask_code(client, mailbox, "AARON97@Example.org")
    message = mailbox.messages[-1]
    assert message["To"] == EMAIL and "sign-in code" in message["Subject"]
    stored = await db.fetchrow("SELECT code_hash, used_at FROM email_codes")
    assert code.encode() not in stored["code_hash"] and len(stored["code_hash"]) == 32

    response = await redeem(client, code)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["scope"]) == ("bearer", "")
    claims = jwt.decode(
        body["access_token"], JWT_SECRET, algorithms=["HS256"], audience="jambo-api"
    )
    assert (claims["sub"], claims["role"]) == (customer["ulid"], "customer")
    me = await client.get(ME, headers=auth(body["access_token"]))
    assert me.status_code == 200 and me.json()["customer_id"] == customer["ulid"]
    assert await db.fetchval("SELECT used_at IS NOT NULL FROM email_codes")

    replay = await redeem(client, code)
    assert (replay.status_code, replay.json()) == (400, INVALID_GRANT)


async def test_lockout_after_five_wrong_codes_even_with_the_right_one(client, mailbox, db) -> None:
    await create_customer(client)
    code = await ask_code(client, mailbox)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        response = await redeem(client, wrong)
        assert (response.status_code, response.json()) == (400, INVALID_GRANT)
    tries = "SELECT cardinality(wrong_guesses) FROM sign_in_limits WHERE client <> '*'"
    assert await db.fetchval(tries) == 5
    locked = await redeem(client, code)
    assert (locked.status_code, locked.json()) == (400, INVALID_GRANT)
    assert await db.fetchval("SELECT used_at FROM email_codes") is None


async def test_four_wrong_codes_then_the_right_one_signs_in(client, mailbox) -> None:
    await create_customer(client)
    code = await ask_code(client, mailbox)
    for _ in range(4):
        assert (await redeem(client, "000000" if code != "000000" else "111111")).status_code == 400
    assert (await redeem(client, f" {code} ")).status_code == 200


async def test_unknown_email_is_indistinguishable_from_a_known_one(client, mailbox, db) -> None:
    await create_customer(client)
    known = await client.post(EMAIL_CODE, json={"email": EMAIL})
    assert len(mailbox.messages) == 1
    unknown = await client.post(EMAIL_CODE, json={"email": "nobody@example.org"})
    assert len(mailbox.messages) == 1  # nothing sent
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json()) == (202, SENT)
    assert known.headers["content-type"] == unknown.headers["content-type"]
    assert await db.fetchval("SELECT count(*) FROM email_codes") == 1
    code = CODE.search(mailbox.body())
    assert code
    stranger = await redeem(client, code.group(1), "nobody@example.org")
    wrong = await redeem(client, "999999" if code.group(1) != "999999" else "888888")
    assert (stranger.status_code, stranger.json()) == (wrong.status_code, wrong.json())


async def test_the_last_three_codes_stay_valid(client, mailbox, db) -> None:
    """A stranger asking for codes cannot void the one the owner is about to type: a new code
    retires only those older than the address's last three; signing in uses them all up."""
    await create_customer(client)
    codes = [await ask_code(client, mailbox) for _ in range(4)]
    if codes[0] not in codes[1:]:
        assert (await redeem(client, codes[0])).status_code == 400  # the fourth retired it
    assert (await redeem(client, codes[1])).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM email_codes WHERE used_at IS NULL") == 0
    if codes[2] != codes[1]:
        assert (await redeem(client, codes[2])).status_code == 400


async def test_an_expired_code_is_refused(client, mailbox, db) -> None:
    await create_customer(client)
    code = await ask_code(client, mailbox)
    await db.execute("UPDATE email_codes SET expires_at = now() - interval '1 second'")
    response = await redeem(client, code)
    assert (response.status_code, response.json()) == (400, INVALID_GRANT)


async def test_codes_expire_after_ten_minutes(client, mailbox, db) -> None:
    await create_customer(client)
    await ask_code(client, mailbox)
    lifetime = await db.fetchval("SELECT expires_at - created_at FROM email_codes")
    assert abs(lifetime.total_seconds() - 600) < 5


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": GRANT, "email": EMAIL},
        {"grant_type": GRANT, "code": "123456"},
        {"grant_type": GRANT, "email": "aaron\x00@example.org", "code": "123456"},
        {"grant_type": GRANT, "email": "a" * 5000 + "@example.org", "code": "123456"},
        {"grant_type": GRANT, "email": EMAIL, "code": "1\x002345"},
    ],
)
async def test_malformed_email_code_grants_are_400(client, data) -> None:
    await create_customer(client)
    response = await client.post(TOKEN, data=data)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "invalid_grant")


async def test_openapi_documents_each_grant_with_its_own_fields(client) -> None:
    """One form of named fields (Swagger UI shows one input each, left empty) and a named
    example per grant with the fields that grant needs; sign-in from /docs by OAuth2."""
    spec = (await client.get("/openapi.json")).json()
    body = spec["paths"][TOKEN]["post"]["requestBody"]["content"]
    form = body["application/x-www-form-urlencoded"]
    fields = spec["components"]["schemas"]["TokenRequest"]
    assert fields["required"] == ["grant_type"]
    assert fields["properties"]["grant_type"]["enum"] == ["client_credentials", GRANT]
    for name in ("client_id", "client_secret", "scope", "email", "code"):
        assert fields["properties"][name]["examples"] == [""], name
    examples = {e["value"]["grant_type"]: e["value"] for e in form["examples"].values()}
    assert set(examples["client_credentials"]) == {"grant_type", "client_id", "client_secret"}
    assert set(examples[GRANT]) == {"grant_type", "email", "code"}
    oauth2 = spec["components"]["securitySchemes"]["OAuth2"]["flows"]["clientCredentials"]
    assert oauth2["tokenUrl"] == "api/auth/token"  # relative: right under ROOT_PATH too
    assert set(oauth2["scopes"]) >= {"customers:read", "loyalty:write"}
    listed = spec["paths"]["/api/v1/loyalty/"]["get"]["security"]
    assert listed == [{"HTTPBearer": []}, {"OAuth2": ["loyalty:read"]}]
    own = spec["paths"]["/api/v3/customer/"]["get"]["security"]
    assert own == [{"HTTPBearer": []}]  # customers only: a client's token would be refused


@pytest.mark.parametrize(
    "body",
    [{"email": "nul\x00@example.org"}, {"email": "x" * 300}, {"email": "not an address"}],
)
async def test_odd_addresses_still_get_202(client, mailbox, body) -> None:
    response = await client.post(EMAIL_CODE, json=body)
    assert (response.status_code, response.json()) == (202, SENT)
    assert mailbox.messages == []


async def test_email_code_request_needs_a_json_email(client) -> None:
    for body in ({"email": 5}, {}, ["a"]):
        response = await client.post(EMAIL_CODE, json=body)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


async def test_mail_server_down_still_answers_202(settings, mailbox, db) -> None:
    from app.main import create_app
    from tests.conftest import free_port

    mailbox.messages.clear()
    down = create_app(settings.model_copy(update={"smtp_port": free_port()}))  # nobody listens
    try:
        async with down.router.lifespan_context(down):
            transport = httpx.ASGITransport(app=down)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                await create_customer(c)
                response = await c.post(EMAIL_CODE, json={"email": EMAIL})
                assert (response.status_code, response.json()) == (202, SENT)
        assert mailbox.messages == []
        assert await db.fetchval("SELECT count(*) FROM email_codes") == 1  # never delivered
    finally:
        await db.execute("TRUNCATE customers, email_codes CASCADE")
