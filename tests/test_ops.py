"""Operational endpoints: health, readiness, metrics, docs without a CDN, CORS."""

import httpx

from tests.conftest import STAFF


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_readyz_is_503_when_migrations_are_behind(client: httpx.AsyncClient, app) -> None:
    expected = app.state.head_revision
    app.state.head_revision = "9999"
    try:
        response = await client.get("/readyz")
    finally:
        app.state.head_revision = expected
    assert response.status_code == 503


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/api/customer/01HWJ8WH9X8WBK65EMGY9YKPBS", headers=STAFF)
    text = (await client.get("/metrics")).text
    assert 'route="/api/customer/{customer_ulid}"' in text
    assert "jambo_http_request_duration_seconds_bucket" in text
    assert "01HWJ8WH9X8WBK65EMGY9YKPBS" not in text
    assert 'jambo_db_pool_connections{pool="sqlalchemy",state="checked_out"}' in text


async def test_metrics_label_unknown_methods_as_other(client: httpx.AsyncClient) -> None:
    # Any token is a method to HTTP: a client inventing them must not invent time series.
    response = await client.request("BREW", "/api/customers", headers=STAFF)
    assert response.status_code == 405
    text = (await client.get("/metrics")).text
    assert 'method="BREW"' not in text
    assert 'jambo_http_requests_total{method="OTHER",route="/api/customers",status="405"}' in text


async def test_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "cdn." not in docs.text and "unpkg" not in docs.text
    assert "swagger-ui-bundle.js" in docs.text
    bundle = await client.get("/static-offline-docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    redoc = await client.get("/redoc")
    assert redoc.status_code == 200 and "cdn." not in redoc.text
    spec = (await client.get("/openapi.json")).json()
    for path in ("/api/customers", "/api/customer/{customer_ulid}", "/api/auth/token"):
        assert path in spec["paths"]


async def test_cors_preflight_for_a_configured_origin(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/customers",
        headers={
            "Origin": "https://frontend.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://frontend.example.com"
    other = await client.options(
        "/api/customers",
        headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers


async def test_cors_exposes_the_headers_a_script_needs(client: httpx.AsyncClient) -> None:
    """A frontend on another origin can read every header it acts on (issue 21)."""
    response = await client.get(
        "/api/v1/customers/01HWJ8WH9X8WBK65EMGY9YKPBS",
        headers={"Origin": "https://frontend.example.com"},
    )
    assert response.status_code == 401
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert exposed == {
        "ETag",
        "Location",
        "Content-Location",
        "X-Request-ID",
        "Retry-After",
        "WWW-Authenticate",
        "Idempotent-Replayed",
    }


async def test_root_path_prefixes_links_and_docs(settings, client: httpx.AsyncClient) -> None:
    """(`client` is requested for its clean-up of the rows created here.)"""
    from app.main import create_app
    from tests.conftest import create_customer

    application = create_app(settings.model_copy(update={"root_path": "/jambo"}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            created = [await create_customer(c, email=f"r{i}@example.org") for i in range(2)]
            # The reads by id (app/contracts/lane.py matches them itself) under either path.
            ulid = created[0]["ulid"]
            for path in (f"/api/v1/customers/{ulid}", f"/jambo/api/customer/{ulid}"):
                assert (await c.get(path, headers=STAFF)).status_code == 200, path
            # The gateway may strip the prefix or pass it on: both give the same links.
            for path in ("/api/customers?page_size=1", "/jambo/api/customers?page_size=1"):
                body = (await c.get(path, headers=STAFF)).json()
                assert body["next"] == "http://gw/jambo/api/customers?page=2&page_size=1"
            docs = await c.get("/docs")
            assert "/jambo/openapi.json" in docs.text
            assert "/jambo/static-offline-docs/swagger-ui-bundle.js" in docs.text
