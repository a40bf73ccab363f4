"""The `jambo` command: tokens that the service accepts, API clients that can sign in."""

import os
import subprocess
import sys

import httpx
from jose import jwt

from tests.conftest import JWT_SECRET, create_customer


def jambo(*args: str, database_url: str | None = None) -> str:
    env = {**os.environ, "JWT_SECRET": JWT_SECRET}
    if database_url:
        env["DATABASE_URL"] = database_url
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def test_staff_and_customer_tokens_work_on_the_api(client: httpx.AsyncClient) -> None:
    staff = jambo("token", "--staff", "--scope", "customers:read")
    claims = jwt.get_unverified_claims(staff)
    assert (claims["role"], claims["scope"]) == ("staff", "customers:read")
    listed = await client.get("/api/customers", headers={"Authorization": f"Bearer {staff}"})
    assert listed.status_code == 200
    created = await client.post(
        "/api/customers", json={}, headers={"Authorization": f"Bearer {staff}"}
    )
    assert created.status_code == 403  # no customers:write in that token

    customer = await create_customer(client)
    own = jambo("token", "--customer", customer["ulid"])
    response = await client.get(
        f"/api/customer/{customer['ulid']}", headers={"Authorization": f"Bearer {own}"}
    )
    assert response.status_code == 200


async def test_clients_create_prints_credentials_the_token_endpoint_accepts(
    client: httpx.AsyncClient, database_url: str
) -> None:
    out = jambo("clients", "create", "shop", "--scope", "loyalty:read", database_url=database_url)
    fields = dict(line.split("=", 1) for line in out.splitlines())
    response = await client.post(
        "/api/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": fields["client_id"],
            "client_secret": fields["client_secret"],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "loyalty:read"
    wrong = await client.post(
        "/api/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": fields["client_id"],
            "client_secret": "not-it",
        },
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
