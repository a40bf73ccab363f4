"""Idempotency-Key on the creating POSTs of every contract: replay, refusals, concurrency."""

import asyncio
from typing import Any

import httpx

from tests.conftest import JAMBO_CUSTOMER, STAFF, TABLES, auth, make_token

JAMBO = "/api/customers"
V1 = "/api/v1/customers"
LOYALTY = "/api/v1/loyalty/"
REPLAYED = "idempotent-replayed"
MEMBER = {
    "loyalty_id": "K-1",
    "cardno": "123",
    "client_name": "Kamau",
    "client_birthday": "1980-02-03",
    "discount": "5",
}
IN_FLIGHT = "A request with this Idempotency-Key is still being processed."
OTHER_BODY = "This Idempotency-Key was already used with another request body."


def keyed(key: str, headers: dict[str, str] = STAFF) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def count(db: Any, table: str) -> int:
    return int(await db.fetchval(f"SELECT count(*) FROM {table}"))


async def test_jambo_replay_other_body_and_no_second_record(
    client: httpx.AsyncClient, db: Any
) -> None:
    first = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("k-1"))
    assert first.status_code == 201 and REPLAYED not in first.headers
    again = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("k-1"))
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers[REPLAYED] == "true"
    assert again.headers["content-type"] == "application/json"
    assert await count(db, "customers") == 1
    # The draft's sf-string form ("…") names the same key.
    quoted = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed('"k-1"'))
    assert quoted.headers[REPLAYED] == "true" and quoted.content == first.content

    other = {**JAMBO_CUSTOMER, "email": "else@example.org"}
    refused = await client.post(JAMBO, json=other, headers=keyed("k-1"))
    assert refused.status_code == 422
    assert refused.json() == {"statusCode": 422, "body": OTHER_BODY}
    assert await count(db, "customers") == 1


async def test_v1_replay_keeps_content_location(client: httpx.AsyncClient, db: Any) -> None:
    body = {"firstName": "Amina", "lastName": "Okafor"}
    first = await client.post(V1, json=body, headers=keyed("v1-key"))
    assert first.status_code == 201
    again = await client.post(V1, json=body, headers=keyed("v1-key"))
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["content-location"] == first.headers["content-location"]
    assert again.headers[REPLAYED] == "true"
    assert await count(db, "customers") == 1
    refused = await client.post(V1, json={**body, "lastName": "Obi"}, headers=keyed("v1-key"))
    assert refused.status_code == 422
    assert refused.json() == {
        "success": False,
        "status": 422,
        "data": {"error": OTHER_BODY, "request": V1, "method": "POST"},
    }


async def test_loyalty_single_and_bulk_replay(client: httpx.AsyncClient, db: Any) -> None:
    first = await client.post(LOYALTY, json=MEMBER, headers=keyed("one"))
    assert first.status_code == 201 and first.json() == {"updated": 0, "inserted": 1}
    again = await client.post(LOYALTY, json=MEMBER, headers=keyed("one"))
    assert (again.status_code, again.content) == (201, first.content)  # not {"updated": 1}
    assert again.headers["location"] == first.headers["location"]
    assert again.headers[REPLAYED] == "true"
    assert again.headers["allow"] == first.headers["allow"]

    bulk = [{**MEMBER, "loyalty_id": "K-2"}, {**MEMBER, "loyalty_id": "K-3"}]
    done = await client.post(LOYALTY, json=bulk, headers=keyed("many"))
    assert done.json() == {"updated": 0, "inserted": 2}
    replay = await client.post(LOYALTY, json=bulk, headers=keyed("many"))
    assert replay.json() == {"updated": 0, "inserted": 2} and replay.headers[REPLAYED] == "true"
    assert await count(db, "loyalty_members") == 3
    assert await count(db, "audit_events") == 3  # the work ran once per key

    refused = await client.post(LOYALTY, json=bulk[:1], headers=keyed("many"))
    assert refused.status_code == 422 and refused.json() == {"detail": OTHER_BODY}


async def test_keys_are_scoped_to_the_caller(client: httpx.AsyncClient) -> None:
    assert (await client.post(LOYALTY, json=MEMBER, headers=keyed("shared"))).status_code == 201
    other_staff = auth(make_token("staff-2"))
    theirs = await client.post(LOYALTY, json=MEMBER, headers=keyed("shared", other_staff))
    assert theirs.status_code == 201 and REPLAYED not in theirs.headers
    assert theirs.json() == {"updated": 1, "inserted": 0}  # their request ran


async def test_only_success_is_kept_a_refusal_releases_the_key(
    client: httpx.AsyncClient, db: Any
) -> None:
    bad = await client.post(JAMBO, json={**JAMBO_CUSTOMER, "dob": "soon"}, headers=keyed("fix"))
    assert bad.status_code == 400
    assert await count(db, "idempotency_keys") == 0
    # The corrected body may reuse the key: it runs, and is then kept.
    fixed = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("fix"))
    assert fixed.status_code == 201 and REPLAYED not in fixed.headers
    assert await count(db, "idempotency_keys") == 1
    # No valid token: the route answers 401 and nothing is stored.
    anonymous = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers={"Idempotency-Key": "x"})
    assert anonymous.status_code == 401
    no_scope = auth(make_token(scope="customers:read"))
    denied = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("x", no_scope))
    assert denied.status_code == 403
    assert await count(db, "idempotency_keys") == 1


async def test_malformed_keys_are_400_in_the_contracts_format(client: httpx.AsyncClient) -> None:
    for key in ("", "x" * 256, "a\tb"):
        headers = {**STAFF, "Idempotency-Key": key}
        jambo = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=headers)
        assert jambo.status_code == 400
        assert jambo.json() == {
            "statusCode": 400,
            "body": {"Idempotency-Key": ["must be 1 to 255 printable ASCII characters"]},
        }
        loyalty = await client.post(LOYALTY, json=MEMBER, headers=headers)
        assert loyalty.status_code == 400
    v1 = await client.post(V1, json={"firstName": "A", "lastName": "B"}, headers=keyed(""))
    assert v1.json()["data"]["error"] == [
        "'Idempotency-Key' must be 1 to 255 printable ASCII characters"
    ]


async def _held_keys(db: Any) -> int:
    return int(await db.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))


async def test_in_flight_is_409_then_the_answer_is_replayed(
    client: httpx.AsyncClient, db: Any
) -> None:
    # Hold the first request inside its INSERT: a lock on the table it writes.
    blocker = db.transaction()
    await blocker.start()
    await db.execute("LOCK TABLE customers IN SHARE MODE")
    first = asyncio.create_task(client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("slow")))
    try:
        for _ in range(200):
            if await _held_keys(db):
                break
            await asyncio.sleep(0.02)
        second = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("slow"))
        assert second.status_code == 409, second.text
        assert second.json() == {"statusCode": 409, "body": IN_FLIGHT}
        other = await client.post(LOYALTY, json=MEMBER, headers=keyed("other"))
        assert other.status_code == 201  # other keys are not held up
        # Nothing of the first is visible before it commits: its answer is part of its work.
        assert await count(db, "idempotency_keys") == 1
    finally:
        await blocker.rollback()
    done = await first
    assert done.status_code == 201
    third = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("slow"))
    assert (third.status_code, third.content) == (201, done.content)
    assert third.headers[REPLAYED] == "true"


async def test_a_request_that_failed_holds_no_key(client: httpx.AsyncClient, db: Any) -> None:
    """A request cut off mid-work (its database connection killed, as in a crash or a
    failover) leaves nothing: the retry runs at once, never a minute of 409s."""
    blocker = db.transaction()
    await blocker.start()
    await db.execute("LOCK TABLE customers IN SHARE MODE")
    first = asyncio.create_task(client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("cut")))
    try:
        for _ in range(200):
            if await _held_keys(db):
                break
            await asyncio.sleep(0.02)
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
        )
        cut = await first
    finally:
        await blocker.rollback()
    assert cut.status_code == 503
    retried = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("cut"))
    assert retried.status_code == 201 and REPLAYED not in retried.headers
    assert await count(db, "customers") == 1


async def test_eight_concurrent_retries_create_one_record(
    client: httpx.AsyncClient, db: Any
) -> None:
    answers = await asyncio.gather(
        *(client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("burst")) for _ in range(8))
    )
    assert await count(db, "customers") == 1
    statuses = sorted((a.status_code, a.headers.get(REPLAYED, "")) for a in answers)
    originals = [s for s in statuses if s == (201, "")]
    assert len(originals) == 1, statuses
    assert all(s in ((201, ""), (201, "true"), (409, "")) for s in statuses), statuses
    body = next(a.content for a in answers if a.status_code == 201)
    assert all(a.content == body for a in answers if a.status_code == 201)


async def test_an_expired_answer_lets_the_work_run_again(
    client: httpx.AsyncClient, db: Any
) -> None:
    first = await client.post(LOYALTY, json=MEMBER, headers=keyed("old"))
    assert first.json() == {"updated": 0, "inserted": 1}
    expires = await db.fetchval("SELECT expires_at - created_at FROM idempotency_keys")
    assert expires.total_seconds() == 24 * 3600
    await db.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    later = await client.post(LOYALTY, json=MEMBER, headers=keyed("old"))
    assert later.json() == {"updated": 1, "inserted": 0} and REPLAYED not in later.headers
    assert await count(db, "idempotency_keys") == 1


async def test_eight_concurrent_retries_over_http_create_one_record(
    live_server: str, db: Any
) -> None:
    """The same against the running service: eight connections at once, one v1 customer."""
    await db.execute("TRUNCATE idempotency_keys, audit_events, customers CASCADE")
    body = {"firstName": "Wairimu", "lastName": "Njoroge", "email": "w.njoroge@example.org"}
    try:
        async with httpx.AsyncClient(base_url=live_server, timeout=20) as http:
            answers = await asyncio.gather(
                *(http.post(V1, json=body, headers=keyed("http-burst")) for _ in range(8))
            )
        assert await count(db, "customers") == 1
        kinds = sorted((a.status_code, a.headers.get(REPLAYED, "")) for a in answers)
        assert kinds.count((201, "")) == 1, kinds
        assert set(kinds) <= {(201, ""), (201, "true"), (409, "")}, kinds
    finally:
        await db.execute("TRUNCATE idempotency_keys, audit_events, customers CASCADE")


# ------------------------------------------------- a replay is an answer like any other


async def test_a_replay_checks_scope_first_on_every_contract(client: httpx.AsyncClient) -> None:
    member = {**MEMBER, "loyalty_id": "scoped"}
    v1_body = {"firstName": "Amina", "lastName": "Okafor"}
    for path, body in ((JAMBO, JAMBO_CUSTOMER), (V1, v1_body), (LOYALTY, member)):
        first = await client.post(path, json=body, headers=keyed(f"scope{path}"))
        assert first.status_code == 201, first.text
        for scope in ("customers:read loyalty:read", None):
            weaker = auth(make_token(scope=scope))  # the same sub, less power
            replay = await client.post(path, json=body, headers=keyed(f"scope{path}", weaker))
            assert replay.status_code == 403, (path, replay.text)
            assert REPLAYED not in replay.headers
            assert "Okafor" not in replay.text and "Norris" not in replay.text


async def test_a_replay_checks_revocation_first(app: Any, client: httpx.AsyncClient) -> None:
    client_id, secret = await app.state.services.auth.create_client(
        "shop", ["customers:read", "customers:write"]
    )
    grant = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    token = (await client.post("/api/auth/token", data=grant)).json()["access_token"]
    first = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("rev", auth(token)))
    assert first.status_code == 201
    await app.state.services.auth.revoke_client(client_id)
    app.state.services.client_states._cache.clear()  # as after its few seconds
    replay = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("rev", auth(token)))
    assert replay.status_code == 401 and "Norris" not in replay.text


async def test_the_caller_is_the_whole_identity(client: httpx.AsyncClient, db: Any) -> None:
    long_a, long_b = "s" * 200 + "-a", "s" * 200 + "-b"  # alike in their first 200 characters
    a = await client.post(LOYALTY, json=MEMBER, headers=keyed("same", auth(make_token(long_a))))
    b = await client.post(LOYALTY, json=MEMBER, headers=keyed("same", auth(make_token(long_b))))
    assert a.json() == {"updated": 0, "inserted": 1}
    assert b.json() == {"updated": 1, "inserted": 0} and REPLAYED not in b.headers
    assert await count(db, "idempotency_keys") == 2
    actors = await db.fetch("SELECT DISTINCT actor FROM audit_events ORDER BY actor")
    assert len(actors) == 2 and all(len(r["actor"]) <= 100 for r in actors)


async def test_erasing_a_customer_erases_the_answers_holding_their_data(
    client: httpx.AsyncClient, db: Any, mailbox: Any
) -> None:
    created = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("gone"))
    ulid = created.json()["body"]["ulid"]
    v1 = await client.post(
        V1, json={"firstName": "Wanjiru", "lastName": "Kamau"}, headers=keyed("gone-too")
    )
    export = await client.get(f"/api/customer/{ulid}/export", headers=STAFF)
    assert [a["status"] for a in export.json()["stored_answers"]] == [201]
    assert (await client.delete(f"/api/customer/{ulid}", headers=STAFF)).status_code == 200
    assert await count(db, "idempotency_keys") == 1  # the other customer's answer stays
    retried = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("gone"))
    assert retried.status_code == 201 and REPLAYED not in retried.headers  # ran again
    assert retried.json()["body"]["ulid"] != ulid
    # The person's own deletion link erases their answers too.
    from tests.test_deletion import JSON_ONLY, request_link

    v1_ulid = v1.json()["data"]["customerId"]
    await db.execute("UPDATE customers SET email = 'w.kamau@example.org' WHERE last_name = 'Kamau'")
    link = await request_link(client, mailbox, v1_ulid)
    confirmed = await client.get(f"/api/customer/{link}/delete/confirm", headers=JSON_ONLY)
    assert confirmed.status_code == 200
    left = await db.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE position($1::bytea in body) > 0",
        v1_ulid.encode(),
    )
    assert left == 0


async def test_a_caller_holds_a_bounded_number_of_live_keys(settings: Any, db: Any) -> None:
    from app.main import create_app

    application = create_app(settings.model_copy(update={"idempotency_max_live_keys": 3}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            for i in range(3):
                body = {**MEMBER, "loyalty_id": f"cap{i}"}
                assert (await c.post(LOYALTY, json=body, headers=keyed(f"c{i}"))).status_code == 201
            over = await c.post(LOYALTY, json={**MEMBER, "loyalty_id": "cap3"}, headers=keyed("c3"))
            jambo = await c.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed("c4"))
            v1 = await c.post(V1, json={"firstName": "A", "lastName": "B"}, headers=keyed("c5"))
            replay = await c.post(
                LOYALTY, json={**MEMBER, "loyalty_id": "cap0"}, headers=keyed("c0")
            )
            unkeyed = await c.post(LOYALTY, json={**MEMBER, "loyalty_id": "cap3"}, headers=STAFF)
            other = await c.post(
                LOYALTY, json=MEMBER, headers=keyed("c3", auth(make_token("staff-2")))
            )
    assert over.status_code == 429 and over.json() == {
        "detail": "Too many live Idempotency-Keys for this caller; retry later."
    }
    assert over.headers["retry-after"]
    assert jambo.status_code == 429 and jambo.json()["statusCode"] == 429
    assert v1.status_code == 429 and v1.json()["data"]["method"] == "POST"
    assert replay.status_code == 201 and replay.headers[REPLAYED] == "true"
    assert unkeyed.status_code == 201 and other.status_code == 201  # others are not held
    assert await count(db, "idempotency_keys") == 4
    await db.execute(f"TRUNCATE {TABLES} CASCADE")


async def test_a_replayed_page_keeps_its_security_headers(client: httpx.AsyncClient) -> None:
    page = {**STAFF, "Accept": "text/html", "Idempotency-Key": "page"}
    form = {"loyalty_id": "P-1", "client_name": "Page", "client_birthday": "2000-01-31"}
    first = await client.post(LOYALTY + "?format=api", data=form, headers=page)
    again = await client.post(LOYALTY + "?format=api", data=form, headers=page)
    assert first.status_code == again.status_code == 201, first.text[-300:]
    assert again.headers[REPLAYED] == "true"
    for name in ("content-security-policy", "referrer-policy", "x-content-type-options"):
        assert again.headers[name] == first.headers[name], name
    assert "script-src 'sha256-" in again.headers["content-security-policy"]


async def test_a_unit_that_failed_returns_its_connection_clean(
    client: httpx.AsyncClient, db: Any
) -> None:
    """A keyed request refused inside its work (the address is taken) rolls its transaction
    back: no session is left idle in a transaction, and the next requests run normally."""
    assert (await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=STAFF)).status_code == 201
    for n in range(3):
        taken = await client.post(JAMBO, json=JAMBO_CUSTOMER, headers=keyed(f"taken-{n}"))
        assert taken.status_code == 409, taken.text
    idle_in_transaction = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
    )
    assert idle_in_transaction == 0
    assert await count(db, "idempotency_keys") == 0
    for n in range(3):
        other = {**JAMBO_CUSTOMER, "email": f"someone.else.{n}@example.org"}
        made = await client.post(JAMBO, json=other, headers=keyed(f"other-{n}"))
        assert made.status_code == 201, made.text
    assert await count(db, "customers") == 4
