"""The floor: a minimal FastAPI app answering the single-customer GET with one raw fetchrow.

No auth, no validation layer, no envelope logic: what the same JSON costs at the least.
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from fastapi import FastAPI
from fastapi.responses import Response
from ulid import ULID

QUERY = """SELECT id, first_name, middle_name, last_name, email, phone_number, nationality, dob,
    gender, address_line1, address_line2, address_city, address_state, address_post_code,
    address_country, updated_at FROM customers WHERE id = $1"""


async def _no_reset(conn: asyncpg.Connection) -> None:
    pass


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    dsn = os.environ["FLOOR_DSN"]
    # Configured as the service's read pool (no reset query on release), so the ratio
    # measures the contract, not a pool setting.
    app.state.pool = await asyncpg.create_pool(dsn, min_size=4, max_size=10, reset=_no_reset)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/api/v1/customers/{customer_id}")
async def get_customer(customer_id: str) -> Response:
    row = await app.state.pool.fetchrow(QUERY, uuid.UUID(bytes=ULID.from_str(customer_id).bytes))
    if row is None:
        return Response(status_code=404)
    body = {
        "customerId": customer_id,
        "firstName": row["first_name"],
        "middleName": row["middle_name"],
        "lastName": row["last_name"],
        "email": row["email"],
        "phoneNumber": row["phone_number"],
        "nationality": row["nationality"],
        "dob": row["dob"].isoformat() if row["dob"] else None,
        "gender": row["gender"],
        "address": {
            "addressLine1": row["address_line1"],
            "addressLine2": row["address_line2"],
            "city": row["address_city"],
            "state": row["address_state"],
            "postCode": row["address_post_code"],
            "country": row["address_country"],
        },
        "lastUpdated": row["updated_at"].isoformat(),
    }
    return Response(orjson.dumps(body), media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
