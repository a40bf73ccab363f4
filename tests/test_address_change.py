"""Changing the sign-in address: pending until the code mailed to the new address is entered,
the old address told, a taken address never revealed; staff changes at once, told too."""

import asyncio
import re
from typing import Any

import httpx

from tests.conftest import JAMBO_CUSTOMER, STAFF, Mailbox, create_customer, customer_auth
from tests.test_auth import ask_code, redeem

FORM = "/api/v3/customer/update/"
CONFIRM = "/api/v3/customer/email/confirm/"
OLD = JAMBO_CUSTOMER["email"]
CODE = re.compile(r"\b(\d{6})\b")


async def mails_to(mailbox: Mailbox, address: str, count: int = 1) -> list[Any]:
    """The messages to `address`, once `count` of them arrived (notices go out after the
    answer)."""
    for _ in range(100):
        found = [m for m in mailbox.messages if m["To"] == address]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"no mail to {address}: {[m['To'] for m in mailbox.messages]}")


def body_of(message: Any) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


async def test_a_new_address_waits_for_its_code(client: httpx.AsyncClient, mailbox, db) -> None:
    customer = await create_customer(client)
    me = customer_auth(customer["ulid"])
    mailbox.messages.clear()
    changed = await client.post(FORM, json={"email": "new@example.org"}, headers=me)
    assert changed.status_code == 200 and changed.json()["has_errors"] is False
    email = changed.json()["form"]["email"]
    assert (email["value"], email["pending"]) == (OLD, "new@example.org")
    assert await db.fetchval("SELECT email FROM customers") == OLD
    # The form says so on every later GET too.
    again = await client.get(FORM, headers=me)
    assert again.json()["form"]["email"]["pending"] == "new@example.org"
    code = CODE.search(body_of((await mails_to(mailbox, "new@example.org"))[0])).group(1)
    warned = await mails_to(mailbox, OLD)
    assert "new@example.org" in body_of(warned[0])
    # The old address still signs in; the new one does not, yet.
    assert (await redeem(client, await ask_code(client, mailbox, OLD), OLD)).status_code == 200

    wrong = await client.post(CONFIRM, json={"code": f"{(int(code) + 1) % 10**6:06d}"}, headers=me)
    assert wrong.status_code == 400
    assert wrong.json() == {"detail": "The code is wrong or has expired."}
    done = await client.post(CONFIRM, json={"code": code}, headers=me)
    assert done.status_code == 200 and done.json()["email"] == "new@example.org"
    assert await db.fetchval("SELECT email FROM customers") == "new@example.org"
    told = await mails_to(mailbox, OLD, 3)  # the warning, a sign-in code, then this
    assert "now new@example.org" in body_of(told[-1])
    assert "pending" not in (await client.get(FORM, headers=me)).json()["form"]["email"]
    assert (await client.post(CONFIRM, json={"code": code}, headers=me)).status_code == 400
    audit = await db.fetchval(
        "SELECT fields FROM audit_events WHERE action = 'customer.updated' ORDER BY id DESC"
    )
    assert audit == ["email"]


async def test_a_taken_address_gets_a_notice_and_no_code(
    client: httpx.AsyncClient, mailbox, db
) -> None:
    customer = await create_customer(client)
    await create_customer(client, email="taken@example.org")
    me = customer_auth(customer["ulid"])
    mailbox.messages.clear()
    answer = await client.post(FORM, json={"email": "taken@example.org"}, headers=me)
    assert answer.json()["form"]["email"]["pending"] == "taken@example.org"
    notice = body_of((await mails_to(mailbox, "taken@example.org"))[0])
    assert "already registered" in notice and not CODE.search(notice)
    guess = await client.post(CONFIRM, json={"code": "123456"}, headers=me)
    assert guess.status_code == 400
    assert await db.fetchval("SELECT count(*) FROM customers WHERE email = $1", OLD) == 1


async def test_five_wrong_codes_then_even_the_right_one_is_refused(
    client: httpx.AsyncClient, mailbox
) -> None:
    customer = await create_customer(client)
    me = customer_auth(customer["ulid"])
    mailbox.messages.clear()
    await client.put(
        "/api/customers", json={**JAMBO_CUSTOMER, "email": "next@example.org"}, headers=me
    )
    code = CODE.search(body_of((await mails_to(mailbox, "next@example.org"))[0])).group(1)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        assert (await client.post(CONFIRM, json={"code": wrong}, headers=me)).status_code == 400
    assert (await client.post(CONFIRM, json={"code": code}, headers=me)).status_code == 400


async def test_jambo_self_put_makes_the_change_pending(
    client: httpx.AsyncClient, mailbox, db
) -> None:
    customer = await create_customer(client)
    me = customer_auth(customer["ulid"])
    put = await client.put(
        "/api/customers",
        json={**JAMBO_CUSTOMER, "first_name": "Cyn", "email": "next@example.org"},
        headers=me,
    )
    assert put.status_code == 200
    assert (put.json()["body"]["first_name"], put.json()["body"]["email"]) == ("Cyn", OLD)
    assert await db.fetchval("SELECT new_email FROM address_changes") == "next@example.org"


async def test_an_expired_change_cannot_be_confirmed(client: httpx.AsyncClient, mailbox, db):
    customer = await create_customer(client)
    me = customer_auth(customer["ulid"])
    mailbox.messages.clear()
    await client.post(FORM, json={"email": "late@example.org"}, headers=me)
    code = CODE.search(body_of((await mails_to(mailbox, "late@example.org"))[0])).group(1)
    await db.execute("UPDATE address_changes SET expires_at = now() - interval '1 second'")
    assert (await client.post(CONFIRM, json={"code": code}, headers=me)).status_code == 400
    assert "pending" not in (await client.get(FORM, headers=me)).json()["form"]["email"]


async def test_staff_change_the_address_at_once_and_the_old_one_is_told(
    client: httpx.AsyncClient, mailbox, db
) -> None:
    customer = await create_customer(client)
    mailbox.messages.clear()
    patched = await client.patch(
        f"/api/v1/customers/{customer['ulid']}", json={"email": "desk@example.org"}, headers=STAFF
    )
    assert patched.status_code == 200 and patched.json()["email"] == "desk@example.org"
    told = body_of((await mails_to(mailbox, OLD))[0])
    assert "desk@example.org" in told
    # A change that keeps the address tells nobody.
    mailbox.messages.clear()
    same = {"firstName": "Renamed"}
    url = f"/api/v1/customers/{customer['ulid']}"
    assert (await client.patch(url, json=same, headers=STAFF)).status_code == 200
    await asyncio.sleep(0.1)
    assert mailbox.messages == []


async def test_confirm_needs_a_customer_token(client: httpx.AsyncClient) -> None:
    assert (await client.post(CONFIRM, json={"code": "1"})).status_code == 401
    assert (await client.post(CONFIRM, json={"code": "1"}, headers=STAFF)).status_code == 403
    customer = await create_customer(client)
    me = customer_auth(customer["ulid"])
    for bad in ({}, {"code": 5}, {"code": "x" * 21}, []):
        answer = await client.post(CONFIRM, json=bad, headers=me)
        assert answer.status_code == 400, (bad, answer.text)
