"""The data-protection deletion flow, from request to mail to confirm, with a real SMTP server."""

import re

import httpx

from tests.conftest import ORIGIN, STAFF, create_customer, customer_auth

JSON_ONLY = {"Accept": "application/json"}
LINK = re.compile(r"(https://app\.example\.com/api/customer/([A-Za-z0-9_-]+)/delete/confirm)")


async def request_link(client: httpx.AsyncClient, mailbox, ulid: str) -> str:
    response = await client.post(
        f"/api/customer/{ulid}/delete/request", json={"origin": ORIGIN}, headers=customer_auth(ulid)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"statusCode": 200, "body": "Data deletion link sent successfully"}
    match = LINK.search(mailbox.body())
    assert match, mailbox.body()
    return match.group(2)


async def test_request_mails_a_link_and_confirm_deletes_everything(
    client: httpx.AsyncClient, mailbox, db
) -> None:
    customer = await create_customer(client)
    await db.execute(
        "INSERT INTO loyalty_members (loyalty_id, client_name, customer_id)"
        " SELECT 'L1', 'Cynthia', id FROM customers"
    )
    token = await request_link(client, mailbox, customer["ulid"])
    message = mailbox.messages[-1]
    assert message["To"] == customer["email"]
    assert "deletion" in message["Subject"].lower()
    stored = await db.fetchval("SELECT token_hash FROM deletion_tokens")
    assert token.encode() not in stored and len(stored) == 32

    response = await client.get(f"/api/customer/{token}/delete/confirm", headers=JSON_ONLY)
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "body": "Customer deleted successfully"}
    for table in ("customers", "loyalty_members", "deletion_tokens"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0
    audit = await db.fetch(
        "SELECT action, subject_id, actor FROM audit_events"
        " WHERE action LIKE '%.deleted' ORDER BY id"
    )
    assert [(a["action"], a["subject_id"]) for a in audit] == [
        ("loyalty_member.deleted", audit[0]["subject_id"]),  # the membership the delete took
        ("customer.deleted", customer["ulid"]),
    ]
    assert {a["actor"] for a in audit} == {"self:deletion-link"}
    assert customer["email"] not in str([dict(a) for a in audit])

    replay = await client.get(f"/api/customer/{token}/delete/confirm", headers=JSON_ONLY)
    assert replay.status_code == 404
    assert replay.json() == {"detail": "No Token matches the given query."}


async def test_browser_get_shows_a_confirm_page_and_does_not_delete(
    client: httpx.AsyncClient, mailbox, db
) -> None:
    customer = await create_customer(client)
    token = await request_link(client, mailbox, customer["ulid"])
    page = await client.get(
        f"/api/customer/{token}/delete/confirm", headers={"Accept": "text/html,*/*;q=0.8"}
    )
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "method=post" in page.text and f"/api/customer/{token}/delete/confirm" in page.text
    assert await db.fetchval("SELECT count(*) FROM customers") == 1

    posted = await client.post(
        f"/api/customer/{token}/delete/confirm", headers={"Accept": "text/html"}
    )
    assert posted.status_code == 200 and "deleted" in posted.text
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_json_post_confirm_deletes(client: httpx.AsyncClient, mailbox, db) -> None:
    customer = await create_customer(client)
    token = await request_link(client, mailbox, customer["ulid"])
    response = await client.post(f"/api/customer/{token}/delete/confirm")
    assert response.json() == {"statusCode": 200, "body": "Customer deleted successfully"}
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_new_request_supersedes_the_old_link(client: httpx.AsyncClient, mailbox, db) -> None:
    customer = await create_customer(client)
    first = await request_link(client, mailbox, customer["ulid"])
    second = await request_link(client, mailbox, customer["ulid"])
    assert (
        await client.get(f"/api/customer/{first}/delete/confirm", headers=JSON_ONLY)
    ).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert (
        await client.get(f"/api/customer/{second}/delete/confirm", headers=JSON_ONLY)
    ).status_code == 200


async def test_expired_and_bogus_tokens_are_404(client: httpx.AsyncClient, mailbox, db) -> None:
    customer = await create_customer(client)
    token = await request_link(client, mailbox, customer["ulid"])
    await db.execute("UPDATE deletion_tokens SET expires_at = now() - interval '1 second'")
    for bad in (token, "nonsense", "x" * 300):
        response = await client.get(f"/api/customer/{bad}/delete/confirm", headers=JSON_ONLY)
        assert response.status_code == 404
        assert response.json() == {"detail": "No Token matches the given query."}
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


async def test_origin_must_be_allowed(client: httpx.AsyncClient, mailbox, db) -> None:
    customer = await create_customer(client)
    response = await client.post(
        f"/api/customer/{customer['ulid']}/delete/request",
        json={"origin": "https://evil.example.net"},
        headers=customer_auth(customer["ulid"]),
    )
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
    assert mailbox.messages == []
    assert await db.fetchval("SELECT count(*) FROM deletion_tokens") == 0


async def test_other_or_unknown_customer_is_400(client: httpx.AsyncClient, mailbox) -> None:
    me = await create_customer(client)
    other = await create_customer(client, email="other@example.org")
    for target in (other["ulid"], "01HWJ8WH9X8WBK65EMGY9YKPBS", "garbage"):
        response = await client.post(
            f"/api/customer/{target}/delete/request",
            json={"origin": ORIGIN},
            headers=customer_auth(me["ulid"]),
        )
        assert response.status_code == 400
        assert response.json() == {"statusCode": 400, "body": "Customer Not Found or is Invalid"}
    assert mailbox.messages == []


async def test_staff_token_on_self_only_route_is_403(client: httpx.AsyncClient) -> None:
    customer = await create_customer(client)
    response = await client.post(
        f"/api/customer/{customer['ulid']}/delete/request", json={"origin": ORIGIN}, headers=STAFF
    )
    assert response.status_code == 403
    assert response.json()["statusCode"] == 403


async def test_smtp_failure_is_503_and_leaves_no_live_token(app, settings, db) -> None:
    from app.main import create_app

    broken = settings.model_copy(update={"smtp_port": 1})  # nothing listens there
    application = create_app(broken)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            customer = await create_customer(c)
            response = await c.post(
                f"/api/customer/{customer['ulid']}/delete/request",
                json={"origin": ORIGIN},
                headers=customer_auth(customer["ulid"]),
            )
            assert response.status_code == 503
            assert response.json()["statusCode"] == 503
            assert "mail" in response.json()["body"].lower()
            assert await db.fetchval("SELECT count(*) FROM deletion_tokens") == 0
            await c.delete(f"/api/customer/{customer['ulid']}", headers=STAFF)


async def test_scanners_link_previews_and_head_never_delete(
    client: httpx.AsyncClient, mailbox, db
) -> None:
    customer = await create_customer(client)
    token = await request_link(client, mailbox, customer["ulid"])
    url = f"/api/customer/{token}/delete/confirm"
    for accept in (
        "*/*",
        "text/html",
        "application/json, */*",
        "application/json;q=0.9",
        "application/*",
        "",
    ):
        page = await client.get(url, headers={"Accept": accept})
        assert page.status_code == 200, accept
        assert page.headers["content-type"].startswith("text/html"), accept
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "method=post" in page.text
    bare = client.build_request("GET", url)
    del bare.headers["Accept"]
    assert "text/html" in (await client.send(bare)).headers["content-type"]
    for accept in ("application/json", "*/*"):
        head = await client.head(url, headers={"Accept": accept})
        assert head.status_code == 200
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert await db.fetchval("SELECT count(*) FROM deletion_tokens WHERE used_at IS NULL") == 1
    deleted = await client.get(url, headers={"Accept": "application/json"})
    assert deleted.json() == {"statusCode": 200, "body": "Customer deleted successfully"}
    assert await db.fetchval("SELECT count(*) FROM customers") == 0
