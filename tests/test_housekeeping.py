"""Retention: expired answers, old audit lines and dead codes are purged, the rest kept."""

from typing import Any

import httpx

from app.housekeeping import Housekeeper
from tests.conftest import STAFF, create_customer


async def test_a_pass_purges_what_is_past_its_time_and_nothing_else(
    app: Any, client: httpx.AsyncClient, db: Any
) -> None:
    customer = await create_customer(client)
    keyed = {**STAFF, "Idempotency-Key": "fresh"}
    member = {"loyalty_id": "H-1", "client_name": "Hawa", "client_birthday": "1990"}
    assert (await client.post("/api/v1/loyalty/", json=member, headers=keyed)).status_code == 201
    await db.execute(
        "INSERT INTO idempotency_keys (caller, key, fingerprint, status, headers, body,"
        " expires_at) SELECT caller, 'stale-' || n, fingerprint, status, headers, body,"
        " now() - interval '1 minute' FROM idempotency_keys, generate_series(1, 7) AS n"
    )
    await db.execute(
        "INSERT INTO audit_events (at, action, record_type, subject_id, actor, fields)"
        " SELECT now() - interval '400 days', 'customer.updated', 'customer', 'X', 'staff:old',"
        " '{}' FROM generate_series(1, 12)"
    )
    await db.execute("UPDATE audit_events SET id = id - 1000000 WHERE actor = 'staff:old'")
    lines_before = await db.fetchval("SELECT count(*) FROM audit_events")

    keeper = Housekeeper(app.state.services.db, audit_days=365, interval=60)
    deleted = await keeper.pass_once()

    assert deleted["idempotency_keys"] == 7 and deleted["audit_events"] == 12
    assert await db.fetchval("SELECT array_agg(key) FROM idempotency_keys") == ["fresh"]
    assert await db.fetchval("SELECT count(*) FROM audit_events") == lines_before - 12
    trail = await client.get(f"/api/customer/{customer['ulid']}/export", headers=STAFF)
    assert [line["action"] for line in trail.json()["audit_trail"]] == ["customer.created"]
    assert (await keeper.pass_once()) == {
        "idempotency_keys": 0,
        "audit_events": 0,
        "email_codes": 0,
        "deletion_tokens": 0,
    }


async def test_one_worker_purges_at_a_time(app: Any, db: Any) -> None:
    keeper = Housekeeper(app.state.services.db, audit_days=365, interval=60)
    holder = db.transaction()
    await holder.start()
    await db.execute("SELECT pg_advisory_xact_lock($1)", 0x6A616D626F01)
    try:
        assert await keeper.pass_once() == {}
    finally:
        await holder.rollback()
