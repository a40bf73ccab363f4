"""The change feed: every committed write once, in order, thin; cursors, scope, long poll; and
transactions that commit out of order."""

import asyncio
import datetime as dt
import time
from typing import Any

import asyncpg
import httpx

from app.events.feed import EventFeed
from tests.conftest import (
    JAMBO_CUSTOMER,
    STAFF,
    _plain,
    auth,
    create_customer,
    customer_auth,
    make_token,
)

FEED = "/api/v1/events"


async def read_all(client: httpx.AsyncClient, after: str | None = None, limit: int = 1000):
    """Every event from `after` on, following `next`; and the last cursor."""
    events: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        page = await client.get(FEED, params=params, headers=STAFF)
        assert page.status_code == 200, page.text
        body = page.json()
        events += body["events"]
        if not body["events"]:
            return events, body["next"]
        after = body["next"]


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["subject"]) for e in events]


async def test_every_write_is_one_thin_event_in_order(client: httpx.AsyncClient, db) -> None:
    customer = await create_customer(client)
    ulid = customer["ulid"]
    changed = await client.put(
        f"/api/customer/{ulid}", json={**JAMBO_CUSTOMER, "first_name": "Cyn"}, headers=STAFF
    )
    assert changed.status_code == 200
    member = {"loyalty_id": "E-1", "client_name": "Hawa", "client_birthday": "1990"}
    assert (await client.post("/api/v1/loyalty/", json=member, headers=STAFF)).status_code == 201
    bulk = [{**member, "loyalty_id": f"E-{i}"} for i in (2, 3, 1)]
    assert (await client.post("/api/v1/loyalty/", json=bulk, headers=STAFF)).status_code == 201
    await db.execute(
        "UPDATE loyalty_members SET customer_id = (SELECT id FROM customers)"
        " WHERE loyalty_id = 'E-2'"
    )
    assert (await client.delete(f"/api/customer/{ulid}", headers=STAFF)).status_code == 200

    events, _ = await read_all(client)
    assert kinds(events) == [
        ("jambo.customer.created", ulid),
        ("jambo.customer.updated", ulid),
        ("jambo.loyalty_member.created", "E-1"),
        ("jambo.loyalty_member.updated", "E-1"),  # a bulk upload: one event per member,
        ("jambo.loyalty_member.created", "E-2"),  # in the order the rows were written
        ("jambo.loyalty_member.created", "E-3"),
        ("jambo.loyalty_member.deleted", "E-2"),  # the erasure's cascade is told too
        ("jambo.customer.deleted", ulid),
    ]
    first = events[0]
    assert set(first) == {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "data",
    }
    assert (first["specversion"], first["source"], first["datacontenttype"]) == (
        "1.0",
        "/jambo",
        "application/json",
    )
    assert first["time"].endswith("Z") and first["data"]["id"] == ulid
    assert "email" in first["data"]["fields"] and events[1]["data"]["fields"] == ["first_name"]
    assert len({e["id"] for e in events}) == len(events)
    text = str(events)
    for value in ("Cynthia", "Cyn", "Norris", "aaron97", "Hawa", "+254"):
        assert value not in text  # names and ids only: never a personal value


async def test_refused_writes_make_no_event(client: httpx.AsyncClient) -> None:
    await create_customer(client)
    _, start = await read_all(client)
    taken = await client.post("/api/customers", json=JAMBO_CUSTOMER, headers=STAFF)
    assert taken.status_code == 409
    bad_bulk = [{"loyalty_id": "ok", "client_name": "A"}, {"loyalty_id": ""}]
    assert (await client.post("/api/v1/loyalty/", json=bad_bulk, headers=STAFF)).status_code == 400
    assert (await read_all(client, start))[0] == []


async def test_paging_with_next_sees_each_event_once(client: httpx.AsyncClient) -> None:
    members = [
        {"loyalty_id": f"P-{i}", "client_name": "A", "client_birthday": "1990"} for i in range(7)
    ]
    assert (await client.post("/api/v1/loyalty/", json=members, headers=STAFF)).status_code == 201
    events, last = await read_all(client, limit=2)
    assert [e["subject"] for e in events] == [f"P-{i}" for i in range(7)]
    again = await client.get(FEED, params={"after": last}, headers=STAFF)
    assert again.json() == {"events": [], "next": last}  # unchanged when nothing came


async def test_scope_cursor_limit_and_wait_are_checked(client: httpx.AsyncClient) -> None:
    assert (await client.get(FEED)).status_code == 401
    without = await client.get(FEED, headers=auth(make_token(scope="customers:read")))
    assert without.status_code == 403 and without.json()["data"]["error"]
    customer = await create_customer(client)
    assert (await client.get(FEED, headers=customer_auth(customer["ulid"]))).status_code == 403
    scoped = auth(make_token(scope="events:read"))
    assert (await client.get(FEED, headers=scoped)).status_code == 200
    for params in (
        {"after": "abc"},
        {"after": "-1"},
        {"after": "9" * 20},
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "x"},
        {"wait": "31"},
        {"wait": "-1"},
        {"wait": "nan"},
        {"since": "1"},
    ):
        refused = await client.get(FEED, params=params, headers=STAFF)
        assert refused.status_code == 400, params
        body = refused.json()
        assert (body["success"], body["status"], body["data"]["request"]) == (False, 400, FEED)


async def test_a_long_poll_answers_when_an_event_arrives(client: httpx.AsyncClient) -> None:
    _, start = await read_all(client)
    began = time.monotonic()
    waiting = asyncio.create_task(
        client.get(FEED, params={"after": start, "wait": "10"}, headers=STAFF)
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()
    customer = await create_customer(client)
    answer = await waiting
    assert time.monotonic() - began < 5
    assert kinds(answer.json()["events"]) == [("jambo.customer.created", customer["ulid"])]
    quiet = await client.get(
        FEED, params={"after": answer.json()["next"], "wait": "0.3"}, headers=STAFF
    )
    assert quiet.json()["events"] == []


async def test_events_past_the_retention_are_not_served(client: httpx.AsyncClient, db) -> None:
    old = await create_customer(client)
    await db.execute("UPDATE audit_events SET at = now() - interval '31 days'")
    new = await create_customer(client, email="new@example.org")
    events, _ = await read_all(client)
    assert kinds(events) == [("jambo.customer.created", new["ulid"])]
    assert old["ulid"] != new["ulid"]


async def test_a_long_poll_answers_once_a_running_transaction_stops_holding_events_back(
    client: httpx.AsyncClient, settings
) -> None:
    """An event committed while another transaction (one with a transaction id: it may have
    drawn a line) runs is held back until that transaction ends, which nothing signals: the
    waiting reader must look again then, not sleep until its `wait` runs out."""
    _, start = await read_all(client)
    other = await asyncpg.connect(_plain(settings.database_url))
    try:
        held = other.transaction()
        await held.start()
        await other.fetchval("SELECT pg_current_xact_id()")
        began = time.monotonic()
        waiting = asyncio.create_task(
            client.get(FEED, params={"after": start, "wait": "8"}, headers=STAFF)
        )
        customer = await create_customer(client)
        await asyncio.sleep(1.5)
        assert not waiting.done()  # held back: the other transaction may still commit a line
        await held.rollback()
        answer = await waiting
        assert kinds(answer.json()["events"]) == [("jambo.customer.created", customer["ulid"])]
        assert time.monotonic() - began < 4, "answered when `wait` ran out, not when released"
    finally:
        await other.close()


LINE = (
    "INSERT INTO audit_events (action, record_type, subject_id, actor, fields)"
    " VALUES ($1, 'customer', $2, 'staff:test', '{}') RETURNING id"
)


async def test_transactions_that_commit_out_of_order_are_read_in_full(
    client: httpx.AsyncClient, settings
) -> None:
    """The earlier-numbered transaction commits last: a reader must not pass its event while
    it runs, and then sees both, once, in order."""
    _, start = await read_all(client)
    first = await asyncpg.connect(_plain(settings.database_url))
    second = await asyncpg.connect(_plain(settings.database_url))
    try:
        t1, t2 = first.transaction(), second.transaction()
        await t1.start()
        await t2.start()
        id1 = await first.fetchval(LINE, "customer.updated", "EARLY")
        id2 = await second.fetchval(LINE, "customer.updated", "LATE")
        assert id1 < id2
        await t2.commit()  # the later id is committed first
        meanwhile = await client.get(FEED, params={"after": start}, headers=STAFF)
        assert meanwhile.json()["events"] == []  # id1 may still commit: nothing is passed
        assert meanwhile.json()["next"] == start
        await t1.commit()
        events, _ = await read_all(client, start)
        assert [e["subject"] for e in events] == ["EARLY", "LATE"]
    finally:
        await first.close()
        await second.close()


async def test_a_rolled_back_transaction_leaves_a_gap_not_a_stall(
    client: httpx.AsyncClient, settings
) -> None:
    _, start = await read_all(client)
    conn = await asyncpg.connect(_plain(settings.database_url))
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.fetchval(LINE, "customer.updated", "NEVER")
        await tx.rollback()
    finally:
        await conn.close()
    customer = await create_customer(client)
    events, _ = await read_all(client, start)
    assert kinds(events) == [("jambo.customer.created", customer["ulid"])]


async def test_a_running_transaction_above_the_last_completed_one_is_not_passed(
    client: httpx.AsyncClient, settings
) -> None:
    """Transaction ids and line ids are drawn in different orders. A takes its transaction id,
    B then draws a line, A draws the next line and commits: B still runs, but no transaction
    above A's has completed, so a snapshot's xmax (the last completed transaction id + 1) is
    at B's id and leaves B out of the running ones. The feed must not pass B's line."""
    first = await asyncpg.connect(_plain(settings.database_url))
    second = await asyncpg.connect(_plain(settings.database_url))
    try:
        # Other sessions' commits on a shared server can move xmax past B by chance (hiding
        # the fault for one round): a few rounds.
        for round_ in range(5):
            _, start = await read_all(client)
            a, b = first.transaction(), second.transaction()
            await a.start()
            await b.start()
            await first.fetchval("SELECT pg_current_xact_id()")
            early = await second.fetchval(LINE, "customer.updated", f"B{round_}")
            late = await first.fetchval(LINE, "customer.updated", f"A{round_}")
            assert early < late
            await a.commit()
            meanwhile = await client.get(FEED, params={"after": start}, headers=STAFF)
            assert meanwhile.json()["events"] == [], round_  # B's line may still commit
            await b.commit()
            events, _ = await read_all(client, start)
            assert [e["subject"] for e in events] == [f"B{round_}", f"A{round_}"], round_
    finally:
        await first.close()
        await second.close()


class Samples:
    """Stands in for the database: answers the feed's samples from a list."""

    def __init__(self, rows: list[dict[str, int]]) -> None:
        self.rows = rows
        self.asked = 0
        self.pages: list[tuple[int, int]] = []  # (after, up to) of each page read

    async def fetchrow_primary(self, sql: str, *args: Any) -> dict[str, int]:
        self.asked += 1
        return self.rows.pop(0)

    async def fetch_primary(self, sql: str, cursor: int, settled: int, limit: int) -> list[Any]:
        self.pages.append((cursor, settled))
        line = {"id": settled, "at": dt.datetime.now(dt.UTC), "action": "customer.updated"}
        return [
            {**line, "record_type": "customer", "subject_id": "X", "record_key": None, "fields": []}
        ]


async def test_under_steady_writes_a_read_serves_what_is_settled_without_waiting() -> None:
    """Some writer is always running below the newest sample's bound, but each sample's
    snapshot settles the one before: a read serves that at once, not after SETTLE_SECONDS."""
    rows = [{"drawn": 10 * k, "xmin": 100 * k + 50, "bound": 100 * k + 100} for k in range(1, 200)]
    samples = Samples(rows)
    feed = EventFeed(samples, "/jambo", 30)  # type: ignore[arg-type]
    began = time.monotonic()
    assert (await feed.read(0, 100)).next == 10
    assert (await feed.read(10, 100)).next == 20
    assert time.monotonic() - began < 0.2
    assert samples.pages == [(0, 10), (10, 20)] and samples.asked == 3
