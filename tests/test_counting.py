"""List counts come from a cache that every write to the table invalidates."""

import asyncio

import httpx

from tests.conftest import STAFF, create_customer


async def test_cached_counts_follow_every_write(client: httpx.AsyncClient, db) -> None:
    created = [await create_customer(client, email=f"n{i}@example.org") for i in range(3)]

    async def counts() -> tuple[int, int]:
        jambo = (await client.get("/api/customers?page_size=1", headers=STAFF)).json()
        v1 = (await client.get("/api/v1/customers?pageSize=1", headers=STAFF)).json()
        return jambo["count"], v1["data"]["totalElements"]

    assert await counts() == (3, 3)
    # One cached answer per question: Jambo's "all customers", v1's empty filter.
    assert await db.fetchval("SELECT count(*) FROM count_cache") == 2
    assert await counts() == (3, 3)  # served from the cache
    await create_customer(client, email="n3@example.org")
    assert await counts() == (4, 4)
    await client.delete(f"/api/customer/{created[0]['ulid']}", headers=STAFF)
    assert await counts() == (3, 3)
    # A direct write, bypassing the service, invalidates too (the trigger is in the database).
    await db.execute("DELETE FROM customers WHERE email = 'n1@example.org'")
    assert await counts() == (2, 2)


async def test_filtered_counts_are_cached_per_filter(client: httpx.AsyncClient, db) -> None:
    for i, city in enumerate(("Nairobi", "Nairobi", "Mombasa")):
        response = await client.post(
            "/api/v1/customers",
            json={"firstName": f"A{i}", "lastName": "B", "address": {"city": city}},
            headers=STAFF,
        )
        assert response.status_code == 201
    for city, expected in (("Nairobi", 2), ("Mombasa", 1), ("Nairobi,Mombasa", 3)):
        body = (
            await client.get(f"/api/v1/customers?pageSize=1&address.city={city}", headers=STAFF)
        ).json()
        assert body["data"]["totalElements"] == expected


async def test_concurrent_misses_all_get_the_right_count(client: httpx.AsyncClient, db) -> None:
    for i in range(3):
        await create_customer(client, email=f"c{i}@example.org")
    responses = await asyncio.gather(
        *(client.get("/api/customers?page_size=1", headers=STAFF) for _ in range(8))
    )
    assert [r.json()["count"] for r in responses] == [3] * 8
    assert await db.fetchval("SELECT total FROM count_cache") == 3


async def test_an_abandoned_claim_is_taken_over(client: httpx.AsyncClient, db) -> None:
    await create_customer(client)
    await client.get("/api/customers?page_size=1", headers=STAFF)
    # A counter that died mid-count leaves its claim (-1) behind.
    await db.execute("UPDATE count_cache SET total = -1, computed_at = now() - interval '1 hour'")
    body = (await client.get("/api/customers?page_size=1", headers=STAFF)).json()
    assert body["count"] == 1
    assert await db.fetchval("SELECT total FROM count_cache") == 1


async def test_counts_stay_exact_under_concurrent_writers(client: httpx.AsyncClient, db) -> None:
    await client.get("/api/customers?page_size=1", headers=STAFF)  # caches a count of 0
    await asyncio.gather(*(create_customer(client, email=f"w{i}@example.org") for i in range(12)))
    body = (await client.get("/api/customers?page_size=1", headers=STAFF)).json()
    assert body["count"] == 12


async def test_waiting_for_a_count_holds_no_connection(settings, db) -> None:
    from app.customers.search import CustomerFilter, count
    from app.db.count_cache import CLAIM_TIMEOUT, cache_key
    from app.db.database import Database
    from app.db.engine import make_engine

    small = Database(make_engine(settings.database_url or "", settings), pool_size=1)
    await small.open()
    question = CustomerFilter(first_name="Waits")
    # Another worker's claim on this count at the current generation, alive (younger than
    # CLAIM_TIMEOUT): this request must wait for its answer.
    await db.execute(
        "INSERT INTO count_cache (key, generation, total)"
        " VALUES ($1, table_generation('customers'), -1)",
        cache_key(f"v1 search {question!r}"),
    )
    try:
        waiter = asyncio.create_task(count(small, question))
        await asyncio.sleep(0.2)  # the waiter has looked, found the claim, and sleeps
        # The pool's only connection is free for others while the waiter waits.
        assert await small.fetchrow("SELECT 1 AS one") is not None
        assert not waiter.done(), f"the claim ({CLAIM_TIMEOUT} s) should still hold it"
        await db.execute("DELETE FROM count_cache")  # the claim goes: the waiter counts
        assert await waiter == 0
    finally:
        await small.close()
