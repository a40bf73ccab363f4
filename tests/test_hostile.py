"""Hostile input, in process: pathological bodies, junk ids, foreign hosts, forwarded
headers, HTML security headers, admission control and three contract edges."""

import asyncio
import time
from typing import Any

import httpx
import pytest

from app.bodies import strip_trailing_commas
from app.config import Settings
from app.main import create_app
from tests.conftest import JAMBO_CUSTOMER, STAFF, create_customer, customer_auth, edge_alone
from tests.test_deletion import request_link

ULID = "01HWJ8WH9X8WBK65EMGY9YKPBS"
BOUND_S = 1.5  # generous: the worst of these took 7.6 s (30 KB) before the fix


def pathological() -> dict[str, bytes]:
    """Bodies that hurt naive parsers, each under the 5 MiB bulk limit."""
    return {
        "escaped quotes": b'{"a": "' + b'\\"' * 400_000,
        "escaped quotes, list, trailing comma": b'["' + b'\\"' * 400_000 + b",]",
        "comma then spaces": b"[," + b" " * 900_000 + b"x",
        "deep nesting": b"[" * 200_000 + b"]" * 200_000,
        "huge number": b'{"discount": ' + b"9" * 900_000 + b"}",
        "long string": b'{"client_name": "' + b"a" * 900_000 + b'"}',
    }


def test_trailing_comma_repair_is_right_and_linear() -> None:
    assert strip_trailing_commas('{"a": [1, 2, ], "b": "x, }", }') == '{"a": [1, 2 ], "b": "x, }" }'
    assert strip_trailing_commas('["\\",]", ]') == '["\\",]" ]'
    took = {}
    for size in (100_000, 1_000_000):
        start = time.perf_counter()
        strip_trailing_commas('["' + '\\"' * size)
        strip_trailing_commas('["' + '"' * size + "\\")
        strip_trailing_commas("[" + ", " * size)
        took[size] = time.perf_counter() - start
    # Ten times the input, well under a hundred times the time (quadratic: 100x).
    assert took[1_000_000] < 2.0 and took[1_000_000] < 40 * took[100_000], took


async def test_pathological_bodies_are_answered_quickly_on_every_body_route(
    client: httpx.AsyncClient, app: Any
) -> None:
    customer = await create_customer(client)
    mine = customer_auth(customer["ulid"])
    routes = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in ("post", "put", "patch")
    ]
    assert len(routes) >= 12
    for method, template in routes:
        path = (
            template.replace("{customer_id}", customer["ulid"])
            .replace("{customer_ulid}", customer["ulid"])
            .replace("{loyalty_id}", "L1")
            .replace("{token}", "not-a-token")
        )
        headers = mine if "/v3/" in path or "delete/request" in path else STAFF
        if path == "/api/customers" and method == "PUT":
            headers = mine
        for name, body in pathological().items():
            start = time.perf_counter()
            response = await client.request(
                method,
                path,
                content=body,
                headers={**headers, "Content-Type": "application/json"},
            )
            elapsed = time.perf_counter() - start
            assert response.status_code < 500, (method, path, name)
            assert elapsed < BOUND_S, (method, path, name, elapsed)


@pytest.mark.parametrize("junk", ["%0A", "%0D%0A", "%00", "%20", "x"])
async def test_junk_after_an_id_is_not_found_never_500(
    client: httpx.AsyncClient, db: Any, junk: str
) -> None:
    customer = await create_customer(client)
    ulid = customer["ulid"]
    jambo = {"statusCode": 404, "body": "Not found."}
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = await client.request(
            method, f"/api/v1/customers/{ulid}{junk}", json={"firstName": "A"}, headers=STAFF
        )
        assert response.status_code == 404, (method, response.text)
        assert response.json()["data"]["error"]
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(
            method, f"/api/customer/{ulid}{junk}", json=JAMBO_CUSTOMER, headers=STAFF
        )
        assert response.status_code == 404, (method, response.text)
        assert response.json().keys() == jambo.keys()
    request = await client.post(
        f"/api/customer/{ulid}{junk}/delete/request",
        json={"origin": "https://app.example.com"},
        headers=customer_auth(ulid),
    )
    assert request.status_code in (400, 404), request.text
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert await db.fetchval("SELECT count(*) FROM deletion_tokens") == 0


async def test_a_foreign_host_is_refused_except_on_probes(client: httpx.AsyncClient) -> None:
    evil = {"Host": "evil.example"}
    jambo = await client.get("/api/customers", headers={**STAFF, **evil})
    assert jambo.status_code == 400
    assert jambo.json()["statusCode"] == 400 and "evil" not in jambo.text
    v1 = await client.get("/api/v1/customers", headers={**STAFF, **evil})
    assert v1.status_code == 400 and v1.json()["success"] is False
    # Starlette would redirect to the slash form, built from the Host.
    redirect = await client.get("/api/v1/loyalty", headers={**STAFF, **evil})
    assert redirect.status_code == 400 and "location" not in redirect.headers
    page = await client.get("/api/v1/loyalty/?format=api", headers={**STAFF, **evil})
    assert page.status_code == 400 and "evil" not in page.text
    created = await client.post(
        "/api/v1/loyalty/",
        json={"loyalty_id": "h1", "client_name": "A", "client_birthday": "1990"},
        headers={**STAFF, **evil},
    )
    assert created.status_code == 400
    for probe in ("/healthz", "/metrics"):
        assert (await client.get(probe, headers=evil)).status_code == 200
    # An allowed name with any port is served, and links carry it.
    ok = await client.post(
        "/api/v1/loyalty/",
        json={"loyalty_id": "h1", "client_name": "A", "client_birthday": "1990"},
        headers={**STAFF, "Host": "testserver:8443"},
    )
    assert ok.status_code == 201
    assert ok.headers["location"] == "http://testserver:8443/api/v1/loyalty/h1/"
    await client.delete("/api/v1/loyalty/h1/", headers=STAFF)


async def test_a_trusted_proxy_cannot_forward_a_foreign_host(client: httpx.AsyncClient) -> None:
    # Only the entry our proxy appended counts: the client wrote the ones before it.
    spoofed = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    refused = await client.get("/api/customers", headers={**STAFF, **spoofed})
    assert refused.status_code == 400
    chained = {"X-Forwarded-Host": "evil.example, api.example.com"}
    served = await client.get("/api/customers?page_size=1", headers={**STAFF, **chained})
    assert served.status_code == 200


def test_default_allowed_hosts_are_local_names() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.allowed_hosts == ["localhost", "127.0.0.1", "[::1]"]


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the left entry is the caller's claim
        ("6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),  # 10.0.0.2: a proxy of ours
    ],
)
async def test_the_client_is_the_rightmost_untrusted_forwarded_for(
    forwarded_for: str, client: str
) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(client=scope["client"][0], host=dict(scope["headers"]).get(b"host"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = edge_alone(app, "127.0.0.1,10.0.0.0/8")
    transport = httpx.ASGITransport(app=middleware, client=("10.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        headers = {"X-Forwarded-For": forwarded_for, "X-Forwarded-Host": "a.example, b.example"}
        await c.get("/", headers=headers)
    assert seen == {"client": client, "host": b"b.example"}


async def test_html_pages_send_security_headers(client: httpx.AsyncClient, mailbox: Any) -> None:
    customer = await create_customer(client)
    token = await request_link(client, mailbox, customer["ulid"])
    confirm = await client.get(
        f"/api/customer/{token}/delete/confirm", headers={"Accept": "text/html"}
    )
    loyalty = await client.get("/api/v1/loyalty/?format=api", headers=STAFF)
    refused = await client.get("/api/v1/loyalty/?format=api")  # 401, as a page
    docs = await client.get("/docs")
    for page in (confirm, loyalty, refused, docs):
        assert page.headers["content-type"].startswith("text/html"), page.request.url
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
    assert "script-src 'sha256-" in loyalty.headers["content-security-policy"]
    assert "default-src 'none'" in confirm.headers["content-security-policy"]


async def test_every_answer_says_nosniff(client: httpx.AsyncClient) -> None:
    """JSON, errors, exports and 304s alike: nothing a browser should guess the type of."""
    customer = await create_customer(client)
    me = customer_auth(customer["ulid"])
    answers = [
        await client.get("/api/v1/customers", headers=STAFF),
        await client.get("/api/v1/customers/nope", headers=STAFF),
        await client.get("/api/v3/customer/export/", headers=me),
        await client.get(f"/api/customer/{customer['ulid']}/export", headers=STAFF),
        await client.post("/api/customers", json={}, headers=STAFF),
        await client.get("/api/customers"),
        await client.get("/healthz"),
        await client.get("/openapi.json"),
    ]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url
    assert answers[2].headers["content-disposition"].startswith("attachment")


async def test_past_the_in_flight_limit_requests_are_shed_at_once(
    settings: Settings, db: Any
) -> None:
    application = create_app(settings.model_copy(update={"max_requests_in_flight": 1}))
    member = {"loyalty_id": "slow", "client_name": "A", "client_birthday": "1990"}
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            # The one slot is taken by a request whose body has arrived and whose work waits
            # (on a table lock held here).
            lock = db.transaction()
            await lock.start()
            await db.execute("LOCK TABLE loyalty_members IN ACCESS EXCLUSIVE MODE")
            held = asyncio.create_task(c.post("/api/v1/loyalty/", json=member, headers=STAFF))
            await asyncio.sleep(0.3)
            start = time.perf_counter()
            shed = await c.get("/api/v1/customers", headers=STAFF)
            jambo = await c.get("/api/customers", headers=STAFF)
            elapsed = time.perf_counter() - start
            probe = await c.get("/healthz")
            await lock.rollback()
            first = await held
            after = await c.get("/api/customers", headers=STAFF)
            await c.delete("/api/v1/loyalty/slow/", headers=STAFF)
    assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
    assert shed.json()["success"] is False and shed.json()["status"] == 503
    assert jambo.status_code == 503 and jambo.json()["statusCode"] == 503
    assert elapsed < 1.0
    assert probe.status_code == 200
    assert first.status_code == 201 and after.status_code == 200


async def test_a_body_still_arriving_takes_no_request_slot(settings: Settings) -> None:
    """Only requests whose body has arrived count against MAX_REQUESTS_IN_FLIGHT: clients
    trickling bodies cannot shut everyone else out."""
    application = create_app(settings.model_copy(update={"max_requests_in_flight": 1}))
    releases = [asyncio.Event() for _ in range(3)]

    async def slow_body(release: asyncio.Event) -> Any:
        yield b'{"loyalty_id": "trickle", "client_name": "A", '
        await release.wait()
        yield b'"client_birthday": "1990"}'

    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            trickling = [
                asyncio.create_task(
                    c.post("/api/v1/loyalty/", content=slow_body(release), headers=STAFF)
                )
                for release in releases
            ]
            await asyncio.sleep(0.2)
            served = await c.get("/api/v1/customers", headers=STAFF)
            done = []
            for release, task in zip(releases, trickling, strict=True):
                release.set()
                done.append(await task)
            await c.delete("/api/v1/loyalty/trickle/", headers=STAFF)
    assert served.status_code == 200
    assert [r.status_code for r in done] == [201, 201, 201]


async def test_jambo_refuses_a_blank_required_field(client: httpx.AsyncClient, db: Any) -> None:
    body = {
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.org",
        "nationality": "",
        "dob": "1990-01-01",
        "phone_number": "0712345678",
    }
    response = await client.post("/api/customers", json=body, headers=STAFF)
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "body": {"nationality": ["This field may not be blank."]},
    }
    assert await db.fetchval("SELECT count(*) FROM customers") == 0
    customer = await create_customer(client)
    put = await client.put(
        f"/api/customer/{customer['ulid']}", json={**body, "dob": " "}, headers=STAFF
    )
    assert put.status_code == 400 and set(put.json()["body"]) == {"nationality", "dob"}


async def test_v1_far_pages_are_empty_and_unknown_parameters_are_named(
    client: httpx.AsyncClient,
) -> None:
    await create_customer(client)
    far = await client.get("/api/v1/customers?pageNo=1000000000000", headers=STAFF)
    assert far.status_code == 200, far.text
    data = far.json()["data"]
    assert data["customers"] == [] and data["totalElements"] == 1 and data["last"] is True
    for junk in ("abc", "-1", "1e3", "9" * 19):
        bad = await client.get(f"/api/v1/customers?pageNo={junk}", headers=STAFF)
        assert bad.status_code == 400, junk
    unknown = await client.get(
        "/api/v1/customers?address.addressLine1=George&firstName=Cynthia&colour=red",
        headers=STAFF,
    )
    assert unknown.status_code == 400
    errors = unknown.json()["data"]["error"]
    assert [e.split("'")[1] for e in errors] == ["address.addressLine1", "colour"]
    documented = (
        "firstName=a&lastName=b&address.streetLine1=c&address.streetLine2=d&address.city=e"
        "&address.postCode=f&lastUpdated=2017-12-03T10:15:30%2B11:00&pageNo=0&pageSize=5"
        "&sortBy=firstName"
    )
    assert (await client.get(f"/api/v1/customers?{documented}", headers=STAFF)).status_code == 200


def test_compose_trusts_only_its_own_network() -> None:
    import ipaddress
    from pathlib import Path

    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    compose = yaml.safe_load((Path(__file__).parents[1] / "docker-compose.yml").read_text())
    trusted = compose["services"]["jambo"]["environment"]["FORWARDED_ALLOW_IPS"]
    assert "*" not in trusted
    (pool,) = compose["networks"]["default"]["ipam"]["config"]
    for item in trusted.split(","):
        network = ipaddress.ip_network(item.strip())
        assert network.subnet_of(ipaddress.ip_network(pool["subnet"]))
        assert ipaddress.ip_address(pool["gateway"]) not in network
