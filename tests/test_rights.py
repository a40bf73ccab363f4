"""Right of access (the export) and the audit trail of writes."""

from typing import Any

import httpx

from app.ids import parse_ulid
from tests.conftest import (
    JAMBO_CUSTOMER,
    STAFF,
    auth,
    create_customer,
    customer_auth,
    make_token,
)

LOYALTY = "/api/v1/loyalty/"
V1 = "/api/v1/customers"
UNKNOWN = "01HWJ8WH9X8WBK65EMGY9YKPBS"


async def audit_lines(db: Any) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT action, record_type, subject_id, actor, fields FROM audit_events ORDER BY id"
    )
    return [dict(r) for r in rows]


async def linked_customer(client: httpx.AsyncClient, db: Any) -> dict[str, Any]:
    """A customer with one linked loyalty membership."""
    customer = await create_customer(client)
    member = {
        "loyalty_id": "CARD-7",
        "cardno": "700700",
        "discount": "12.5",
        "client_name": "Cynthia Norris",
        "client_birthday": "1912-09-06",
        "is_male": False,
    }
    assert (await client.post(LOYALTY, json=member, headers=STAFF)).status_code == 201
    await db.execute(
        "UPDATE loyalty_members SET customer_id = $2 WHERE loyalty_id = $1",
        "CARD-7",
        parse_ulid(customer["ulid"]),
    )
    return customer


# ---------------------------------------------------------------- the export


async def test_export_holds_every_stored_field_memberships_and_trail(
    client: httpx.AsyncClient, db: Any
) -> None:
    customer = await linked_customer(client, db)
    ulid = customer["ulid"]
    me = customer_auth(ulid)
    changed = await client.post(
        "/api/v3/customer/update/",
        json={"gender": "female", "address": "12 Moi Avenue"},
        headers=me,
    )
    assert changed.json()["has_errors"] is False

    response = await client.get("/api/v3/customer/export/", headers=me)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="jambo-export-{ulid}.json"'
    )
    assert response.headers["cache-control"] == "no-store"
    document = response.json()
    assert set(document) == {
        "exported_at",
        "customer",
        "loyalty_memberships",
        "audit_trail",
        "stored_answers",
    }

    columns = {
        r["column_name"]
        for r in await db.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'"
        )
    }
    exported = document["customer"]
    assert set(exported) == columns  # every stored field, nothing else
    assert exported["id"] == ulid
    assert exported["email"] == JAMBO_CUSTOMER["email"]
    assert exported["phone_number"] == "+254712345678"
    assert exported["nationality"] == "LS" and exported["dob"] == "1912-09-06"
    assert exported["gender"] == "female" and exported["address_line1"] == "12 Moi Avenue"
    assert exported["version"] == 2

    [membership] = document["loyalty_memberships"]
    assert membership["loyalty_id"] == "CARD-7" and membership["customer_id"] == ulid
    assert membership["discount"] == "12.5000" and membership["client_birthday"] == "1912-09-06"
    member_id = str(membership["id"])

    trail = [
        (t["action"], t["record_id"], t["actor"], t["fields"]) for t in document["audit_trail"]
    ]
    assert trail == [
        (
            "customer.created",
            ulid,
            "staff:staff-1",
            [
                "dob",
                "email",
                "first_name",
                "last_name",
                "middle_name",
                "nationality",
                "phone_number",
            ],
        ),
        (
            "loyalty_member.created",
            member_id,
            "staff:staff-1",
            ["cardno", "client_birthday", "client_name", "discount", "is_male", "loyalty_id"],
        ),
        ("customer.updated", ulid, f"customer:{ulid}", ["address_line1", "gender"]),
    ]
    assert document["exported_at"].endswith("+00:00")

    # The Jambo route gives staff (and the customer themself) the same document.
    for headers in (STAFF, me):
        jambo = await client.get(f"/api/customer/{ulid}/export", headers=headers)
        assert jambo.status_code == 200
        assert jambo.headers["content-disposition"].startswith("attachment;")
        assert {k: v for k, v in jambo.json().items() if k != "exported_at"} == {
            k: v for k, v in document.items() if k != "exported_at"
        }


async def test_who_may_fetch_an_export(client: httpx.AsyncClient) -> None:
    ulid = (await create_customer(client))["ulid"]
    other = (await create_customer(client, email="other@example.org"))["ulid"]
    path = f"/api/customer/{ulid}/export"

    no_scope = auth(make_token(scope="customers:write loyalty:read"))
    assert (await client.get(path, headers=no_scope)).json() == {
        "statusCode": 403,
        "body": "You do not have permission to perform this action.",
    }
    assert (await client.get(path, headers=no_scope)).status_code == 403
    # Another customer's export: not found (existence is not revealed).
    response = await client.get(path, headers=customer_auth(other))
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "body": "Customer not found."}
    for bad in (UNKNOWN, "not-a-ulid"):
        missing = await client.get(f"/api/customer/{bad}/export", headers=STAFF)
        assert missing.status_code == 404
        assert missing.json() == {"statusCode": 404, "body": "Customer not found."}
    assert (await client.get(path)).status_code == 401

    # v3: the customer's own only; staff are refused; no token is 401.
    v3 = "/api/v3/customer/export/"
    assert (await client.get(v3, headers=customer_auth(other))).json()["customer"]["id"] == other
    staff = await client.get(v3, headers=STAFF)
    assert staff.status_code == 403 and "detail" in staff.json()
    anonymous = await client.get(v3)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Customer not authenticated"}
    gone = await client.get(v3, headers=customer_auth(UNKNOWN))
    assert gone.status_code == 401


# ---------------------------------------------------------------- the audit trail


async def test_audit_lines_of_a_create_update_delete(client: httpx.AsyncClient, db: Any) -> None:
    ulid = (await create_customer(client))["ulid"]
    same_but_email = {**JAMBO_CUSTOMER, "email": "new@example.org"}
    updated = await client.put(f"/api/customer/{ulid}", json=same_but_email, headers=STAFF)
    assert updated.status_code == 200
    assert (await client.delete(f"/api/customer/{ulid}", headers=STAFF)).status_code == 200
    assert await audit_lines(db) == [
        {
            "action": "customer.created",
            "record_type": "customer",
            "subject_id": ulid,
            "actor": "staff:staff-1",
            "fields": [
                "dob",
                "email",
                "first_name",
                "last_name",
                "middle_name",
                "nationality",
                "phone_number",
            ],
        },
        # A full PUT of six fields changed one: only that one is named.
        {
            "action": "customer.updated",
            "record_type": "customer",
            "subject_id": ulid,
            "actor": "staff:staff-1",
            "fields": ["email"],
        },
        {
            "action": "customer.deleted",
            "record_type": "customer",
            "subject_id": ulid,
            "actor": "staff:staff-1",
            "fields": [],
        },
    ]


async def test_a_refused_write_leaves_no_audit_line(client: httpx.AsyncClient, db: Any) -> None:
    first = await create_customer(client)
    await create_customer(client, email="second@example.org")
    before = await audit_lines(db)
    clash = {**JAMBO_CUSTOMER, "email": "second@example.org"}
    assert (await client.post("/api/customers", json=clash, headers=STAFF)).status_code == 409
    put = await client.put(f"/api/customer/{first['ulid']}", json=clash, headers=STAFF)
    assert put.status_code == 409
    stale = await client.delete(f"{V1}/{first['ulid']}", headers={**STAFF, "If-Match": '"stale"'})
    assert stale.status_code == 412
    assert await audit_lines(db) == before


async def test_bulk_upload_audits_each_member_changed_in_one_statement(
    client: httpx.AsyncClient, db: Any
) -> None:
    base = {"cardno": "100", "discount": "5", "client_birthday": "1980-01-01", "is_male": True}
    first = [{**base, "loyalty_id": f"M{i}", "client_name": f"Member {i}"} for i in range(3)]
    assert (await client.post(LOYALTY, json=first, headers=STAFF)).json() == {
        "updated": 0,
        "inserted": 3,
    }
    # M0 unchanged, M1 gets a new card number, M3 is new (M1 twice: one member, last wins).
    second = [
        first[0],
        {**first[1], "cardno": "555"},
        {**base, "loyalty_id": "M3", "client_name": "Member 3", "is_male": None},
        {**first[1], "cardno": "556"},
    ]
    assert (await client.post(LOYALTY, json=second, headers=STAFF)).json() == {
        "updated": 3,
        "inserted": 1,
    }
    ids = dict(await db.fetch("SELECT loyalty_id, id::text FROM loyalty_members"))
    lines = [(a["action"], a["subject_id"], a["fields"]) for a in await audit_lines(db)]
    created = ["cardno", "client_birthday", "client_name", "discount", "is_male", "loyalty_id"]
    assert sorted(lines[:3]) == sorted(
        ("loyalty_member.created", ids[f"M{i}"], created) for i in range(3)
    )
    assert sorted(lines[3:]) == sorted(
        [
            ("loyalty_member.updated", ids["M0"], []),
            ("loyalty_member.updated", ids["M1"], ["cardno"]),
            (
                "loyalty_member.created",
                ids["M3"],
                ["cardno", "client_birthday", "client_name", "discount", "loyalty_id"],
            ),
        ]
    )
    # A bulk upload with an invalid item writes nothing, audit lines included.
    bad = [{**base, "loyalty_id": "M9", "client_name": "Nine"}, {"loyalty_id": "M10"}]
    assert (await client.post(LOYALTY, json=bad, headers=STAFF)).status_code == 400
    assert len(await audit_lines(db)) == 6


async def test_no_personal_value_in_any_audit_line(client: httpx.AsyncClient, db: Any) -> None:
    sent: list[str] = []

    def remember(values: dict[str, Any]) -> dict[str, Any]:
        sent.extend(str(v) for v in values.values() if isinstance(v, str) and len(v) >= 3)
        return values

    # Customers through every contract: create, update, delete.
    jambo = await client.post(
        "/api/customers",
        json=remember({**JAMBO_CUSTOMER, "email": "zawadi.k@example.org", "first_name": "Zawadi"}),
        headers=STAFF,
    )
    ulid = jambo.json()["body"]["ulid"]
    put = remember({**JAMBO_CUSTOMER, "email": "zawadi.m@example.org", "last_name": "Mwangi"})
    assert (await client.put(f"/api/customer/{ulid}", json=put, headers=STAFF)).status_code == 200
    v3 = remember(
        {
            "passport_number": "PX9912345",
            "nation_id_number": "29384756",
            "address": "Kilimani Road 44",
            "mobile": "+254733000111",
        }
    )
    form = await client.post("/api/v3/customer/update/", json=v3, headers=customer_auth(ulid))
    assert form.json()["has_errors"] is False
    v1_body = remember({"firstName": "Baraka", "lastName": "Otieno", "email": "baraka@example.org"})
    created = await client.post(V1, json=v1_body, headers=STAFF)
    v1_id = created.json()["data"]["customerId"]
    address = remember({"addressLine1": "Ngong Lane 7", "city": "Kisumu", "postCode": "40100"})
    patched = await client.patch(f"{V1}/{v1_id}", json={"address": address}, headers=STAFF)
    assert patched.status_code == 200
    assert (await client.delete(f"{V1}/{v1_id}", headers=STAFF)).status_code == 204

    # Loyalty members: one, bulk, PUT, PATCH, DELETE.
    one = remember(
        {
            "loyalty_id": "L-1",
            "cardno": "918273",
            "client_name": "Wanjiru Kamau",
            "client_birthday": "1971-03-04",
            "discount": "7.25",
        }
    )
    assert (await client.post(LOYALTY, json=one, headers=STAFF)).status_code == 201
    bulk = [
        remember(
            {
                "loyalty_id": f"L-{i}",
                "cardno": f"64{i}0{i}9",
                "client_name": f"Achieng {i}z",
                "client_birthday": f"196{i}-07-0{i}",
            }
        )
        for i in range(2, 5)
    ]
    assert (await client.post(LOYALTY, json=bulk, headers=STAFF)).status_code == 201
    replaced = remember(
        {
            "loyalty_id": "L-2",
            "cardno": "771177",
            "client_name": "Njeri Wambui",
            "client_birthday": "1955-12-24",
        }
    )
    assert (await client.put(f"{LOYALTY}L-2/", json=replaced, headers=STAFF)).status_code == 200
    patch = remember({"client_name": "Atieno Odhiambo"})
    assert (await client.patch(f"{LOYALTY}L-3/", json=patch, headers=STAFF)).status_code == 200
    assert (await client.delete(f"{LOYALTY}L-4/", headers=STAFF)).status_code == 204
    assert (await client.delete(f"/api/customer/{ulid}", headers=STAFF)).status_code == 200

    rows = await db.fetch("SELECT * FROM audit_events")
    assert len(rows) >= 14
    text = "\n".join(str(dict(r)) for r in rows)
    loyalty_keys = {"L-1", "L-2", "L-3", "L-4"}  # record keys, not personal values
    leaked = [v for v in sent if v not in loyalty_keys and v in text]
    assert leaked == []
    assert "+254712345678" not in text and "1912-09-06" not in text
