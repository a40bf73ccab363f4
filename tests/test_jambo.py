"""Jambo customers contract: envelope, status codes and messages of every row."""

import httpx
import pytest

from tests.conftest import JAMBO_CUSTOMER, STAFF, create_customer, customer_auth


async def test_create_returns_201_envelope_and_normalised_fields(
    client: httpx.AsyncClient, db
) -> None:
    response = await client.post("/api/customers", json=JAMBO_CUSTOMER, headers=STAFF)
    assert response.status_code == 201
    body = response.json()
    assert body["statusCode"] == 201
    customer = body["body"]
    assert set(customer) == {
        "ulid",
        "first_name",
        "last_name",
        "middle_name",
        "nationality",
        "dob",
        "email",
        "phone_number",
    }
    assert len(customer["ulid"]) == 26
    assert customer["nationality"] == "Lesotho"
    assert customer["phone_number"] == "+254712345678"
    assert customer["dob"] == "1912-09-06"
    row = await db.fetchrow("SELECT nationality, phone_number FROM customers")
    assert (row["nationality"], row["phone_number"]) == ("LS", "+254712345678")


async def test_duplicate_email_is_409_case_insensitive(client: httpx.AsyncClient, db) -> None:
    await create_customer(client)
    response = await client.post(
        "/api/customers", json={**JAMBO_CUSTOMER, "email": "AARON97@example.org"}, headers=STAFF
    )
    assert response.status_code == 409
    assert response.json()["statusCode"] == 409
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone_number": "12"}, "phone_number"),
        ({"nationality": "Atlantis"}, "nationality"),
        ({"dob": "2999-01-01"}, "dob"),
        ({"dob": "1899-12-31"}, "dob"),
        ({"dob": "06/09/1912"}, "dob"),
        ({"first_name": ""}, "first_name"),
        ({"first_name": "x" * 101}, "first_name"),
        ({"first_name": 42}, "first_name"),
        ({"last_name": "Nor\x00ris"}, "last_name"),
        ({"email": None}, "email"),
    ],
)
async def test_bad_fields_are_400_with_field_errors_and_nothing_written(
    client: httpx.AsyncClient, db, changes: dict, field: str
) -> None:
    response = await client.post(
        "/api/customers", json={**JAMBO_CUSTOMER, **changes}, headers=STAFF
    )
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400
    assert field in body["body"] and body["body"][field]
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_missing_fields_and_malformed_json(client: httpx.AsyncClient, db) -> None:
    response = await client.post("/api/customers", json={"first_name": "A"}, headers=STAFF)
    assert response.status_code == 400
    assert set(response.json()["body"]) == {
        "last_name",
        "email",
        "nationality",
        "dob",
        "phone_number",
    }
    response = await client.post(
        "/api/customers",
        content=b'{"first_name": ',
        headers={**STAFF, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
    response = await client.post("/api/customers", json=["not", "an", "object"], headers=STAFF)
    assert response.status_code == 400
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_oversized_body_is_413_in_envelope(client: httpx.AsyncClient, db) -> None:
    big = {**JAMBO_CUSTOMER, "first_name": "x" * (1024 * 1024 + 10)}
    response = await client.post("/api/customers", json=big, headers=STAFF)
    assert response.status_code == 413
    assert response.json()["statusCode"] == 413
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_list_pages_with_absolute_links(client: httpx.AsyncClient) -> None:
    created = [await create_customer(client, email=f"c{i}@example.org") for i in range(5)]
    response = await client.get("/api/customers?page_size=2", headers=STAFF)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5
    assert body["previous"] is None
    assert body["next"] == "http://testserver/api/customers?page=2&page_size=2"
    assert body["results"]["statusCode"] == 200
    assert [c["ulid"] for c in body["results"]["body"]] == [c["ulid"] for c in created[:2]]
    last = (await client.get("/api/customers?page=3&page_size=2", headers=STAFF)).json()
    assert [c["ulid"] for c in last["results"]["body"]] == [created[4]["ulid"]]
    assert last["next"] is None
    assert last["previous"] == "http://testserver/api/customers?page=2&page_size=2"


async def test_list_edges(client: httpx.AsyncClient) -> None:
    await create_customer(client)
    past = await client.get("/api/customers?page=9", headers=STAFF)
    assert past.status_code == 404
    assert past.json() == {"detail": "Invalid page."}
    for bad in ("0", "-1", "abc", "99999999999999", "%C2%B2", "--1"):  # %C2%B2: "²"
        assert (await client.get(f"/api/customers?page={bad}", headers=STAFF)).status_code == 404
    capped = await client.get("/api/customers?page_size=100000", headers=STAFF)
    assert capped.status_code == 200 and capped.json()["count"] == 1


async def test_list_links_behind_a_trusted_proxy_use_forwarded_headers(app) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}
    for peer, expected in (
        ("127.0.0.1", "https://api.example.com/api/customers?page=2"),
        ("10.9.9.9", "http://internal:8000/api/customers?page=2"),  # untrusted: ignored
    ):
        transport = httpx.ASGITransport(app=app, client=(peer, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as c:
            if peer == "127.0.0.1":
                for i in range(3):
                    await create_customer(c, email=f"p{i}@example.org")
            body = (
                await c.get("/api/customers?page_size=1", headers={**STAFF, **forwarded})
            ).json()
            assert body["next"].startswith(expected), body["next"]


async def test_get_by_staff_and_self(client: httpx.AsyncClient) -> None:
    customer = await create_customer(client)
    ulid = customer["ulid"]
    for headers in (STAFF, customer_auth(ulid), customer_auth(ulid.lower())):
        response = await client.get(f"/api/customer/{ulid}", headers=headers)
        assert response.status_code == 200
        assert response.json() == {"statusCode": 200, "body": customer}


async def test_customer_cannot_see_another(client: httpx.AsyncClient) -> None:
    me = await create_customer(client)
    other = await create_customer(client, email="other@example.org")
    response = await client.get(f"/api/customer/{other['ulid']}", headers=customer_auth(me["ulid"]))
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404


async def test_unknown_and_invalid_ulid_are_404(client: httpx.AsyncClient) -> None:
    for ulid in ("01HWJ8WH9X8WBK65EMGY9YKPBS", "not-a-ulid", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ"):
        response = await client.get(f"/api/customer/{ulid}", headers=STAFF)
        assert response.status_code == 404
        assert response.json()["statusCode"] == 404


async def test_staff_put_updates_and_returns_200(client: httpx.AsyncClient, db) -> None:
    customer = await create_customer(client)
    change = {**JAMBO_CUSTOMER, "last_name": "Akama", "nationality": "KEN"}
    response = await client.put(f"/api/customer/{customer['ulid']}", json=change, headers=STAFF)
    assert response.status_code == 200
    body = response.json()["body"]
    assert body["last_name"] == "Akama" and body["nationality"] == "Kenya"
    assert await db.fetchval("SELECT version FROM customers") == 2


async def test_staff_put_validation_leaves_record_alone(client: httpx.AsyncClient, db) -> None:
    customer = await create_customer(client)
    change = {**JAMBO_CUSTOMER, "last_name": "Akama", "email": "broken"}
    response = await client.put(f"/api/customer/{customer['ulid']}", json=change, headers=STAFF)
    assert response.status_code == 400
    assert await db.fetchval("SELECT last_name FROM customers") == "Norris"


async def test_put_to_taken_email_is_409(client: httpx.AsyncClient) -> None:
    await create_customer(client)
    other = await create_customer(client, email="other@example.org")
    response = await client.put(
        f"/api/customer/{other['ulid']}", json=JAMBO_CUSTOMER, headers=STAFF
    )
    assert response.status_code == 409


async def test_self_put_updates_own_record(client: httpx.AsyncClient) -> None:
    customer = await create_customer(client)
    change = {**JAMBO_CUSTOMER, "last_name": "Akama"}
    response = await client.put(
        "/api/customers", json=change, headers=customer_auth(customer["ulid"])
    )
    assert response.status_code == 200
    assert response.json()["body"]["last_name"] == "Akama"
    assert response.json()["body"]["ulid"] == customer["ulid"]


async def test_staff_delete_answers_statuscode_204_and_removes_data(
    client: httpx.AsyncClient, db
) -> None:
    customer = await create_customer(client)
    response = await client.delete(f"/api/customer/{customer['ulid']}", headers=STAFF)
    assert response.status_code == 200
    assert response.json() == {"statusCode": 204}
    assert await db.fetchval("SELECT count(*) FROM customers") == 0
    audit = await db.fetchrow(
        "SELECT action, subject_id, actor FROM audit_events WHERE action = 'customer.deleted'"
    )
    assert audit["action"] == "customer.deleted" and audit["subject_id"] == customer["ulid"]
    again = await client.delete(f"/api/customer/{customer['ulid']}", headers=STAFF)
    assert again.status_code == 404


async def test_every_response_has_a_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert len(response.headers["x-request-id"]) >= 16
    echoed = await client.get("/api/customers", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"


async def test_unknown_method_and_path_in_envelope(client: httpx.AsyncClient) -> None:
    response = await client.patch("/api/customers", headers=STAFF)
    assert response.status_code == 405
    assert response.json()["statusCode"] == 405


async def test_405_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.request("OPTIONS", "/api/customer/01HWJ8WH9X8WBK65EMGY9YKPBS")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT, DELETE"
    assert response.json() == {"statusCode": 405, "body": "Method not allowed."}


async def test_phone_numbers_are_read_in_the_default_region_and_rendered_e164(
    client: httpx.AsyncClient,
) -> None:
    for i, given in enumerate(("0712345678", "254712345678", "+254 712 345 678", "712345678")):
        customer = await create_customer(client, email=f"ph{i}@example.org", phone_number=given)
        assert customer["phone_number"] == "+254712345678", given


async def test_countries_by_code_or_everyday_english_name(client: httpx.AsyncClient) -> None:
    cases = {
        "KE": "Kenya",
        "KEN": "Kenya",
        "kenya": "Kenya",
        "Russia": "Russian Federation",
        "Ivory Coast": "Côte d'Ivoire",
        "UK": "United Kingdom",
        "Slovakia (Slovak Republic)": "Slovakia",
        "Reunion": "Réunion",
    }
    for i, (given, shown) in enumerate(cases.items()):
        customer = await create_customer(client, email=f"n{i}@example.org", nationality=given)
        assert customer["nationality"] == shown, given
    response = await client.post(
        "/api/customers", json={**JAMBO_CUSTOMER, "nationality": "Korea"}, headers=STAFF
    )
    assert response.status_code == 400  # ambiguous: North or South
