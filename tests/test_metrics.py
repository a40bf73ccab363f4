"""The series the alert rules and the dashboard read: each moves when its event happens, and
every metric named in deploy/ is one that /metrics exports."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.main import create_app
from tests.conftest import ORIGIN, STAFF, create_customer, customer_auth, free_port

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics scrape by (name, labels)."""
    text = (await client.get("/metrics")).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@asynccontextmanager
async def serving(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built with `changes` to the test settings."""
    application = create_app(settings.model_copy(update=changes))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_a_shed_request_is_counted(settings: Settings) -> None:
    async with serving(settings, max_requests_in_flight=0) as c:
        before = await scrape(c)  # probes are never shed
        response = await c.get("/api/customers", headers=STAFF)
        after = await scrape(c)
    assert response.status_code == 503
    shed = "jambo_requests_shed_total"
    assert value(after, shed) - value(before, shed) == 1


async def test_each_database_unavailable_answer_is_counted_once(settings: Settings) -> None:
    nowhere = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/jambo"
    async with serving(settings, database_url=nowhere, db_connect_timeout_seconds=1.0) as c:
        before = await scrape(c)
        answers = [await c.get("/api/customers", headers=STAFF) for _ in range(2)]
        after = await scrape(c)
    assert [r.status_code for r in answers] == [503, 503]
    name = "jambo_db_unavailable_total"
    assert value(after, name) - value(before, name) == 2


async def test_an_outage_escaping_the_handle_is_counted_when_answered(
    client: httpx.AsyncClient,
) -> None:
    from app.contracts.routing import problem_from
    from app.errors import Unavailable

    before = await scrape(client)
    assert problem_from(ConnectionRefusedError()).status == 503  # counted here
    assert problem_from(Unavailable("counted where it was raised")).status == 503
    after = await scrape(client)
    name = "jambo_db_unavailable_total"
    assert value(after, name) - value(before, name) == 1


async def test_a_failed_mail_send_is_counted(settings: Settings, db: Any) -> None:
    async with serving(settings, smtp_port=free_port()) as c:  # nobody listens there
        customer = await create_customer(c)
        before = await scrape(c)
        response = await c.post(
            f"/api/customer/{customer['ulid']}/delete/request",
            json={"origin": ORIGIN},
            headers=customer_auth(customer["ulid"]),
        )
        after = await scrape(c)
        await c.delete(f"/api/customer/{customer['ulid']}", headers=STAFF)
    assert response.status_code == 503
    for name in ("jambo_mail_sends_total", "jambo_mail_failures_total"):
        assert value(after, name) - value(before, name) == 1, name


async def test_a_delivered_mail_is_a_send_and_no_failure(client: httpx.AsyncClient) -> None:
    customer = await create_customer(client)
    before = await scrape(client)
    response = await client.post(
        f"/api/customer/{customer['ulid']}/delete/request",
        json={"origin": ORIGIN},
        headers=customer_auth(customer["ulid"]),
    )
    after = await scrape(client)
    assert response.status_code < 300, response.text
    assert value(after, "jambo_mail_sends_total") - value(before, "jambo_mail_sends_total") == 1
    failures = "jambo_mail_failures_total"
    assert value(after, failures) == value(before, failures)


async def test_pool_capacity_is_exported_beside_its_use(settings: Settings) -> None:
    async with serving(settings, db_pool_size=4, db_max_overflow=3) as c:
        samples = await scrape(c)
    pool = "jambo_db_pool_connections"
    assert value(samples, pool, pool="sqlalchemy", state="max") == 7
    assert value(samples, pool, pool="read", state="max") == 4
    for state in ("checked_out", "idle"):
        assert (pool, frozenset({"pool": "sqlalchemy", "state": state}.items())) in samples
    for state in ("size", "idle"):
        assert (pool, frozenset({"pool": "read", "state": state}.items())) in samples


async def test_rules_and_dashboards_name_only_exported_metrics(client: httpx.AsyncClient) -> None:
    # PromQL parses any name: a misspelt one would make an alert that never fires.
    await client.get("/api/customers", headers=STAFF)
    exported = {name for name, _ in await scrape(client)}
    files = [*DEPLOY.glob("prometheus/*.yml"), *DEPLOY.glob("grafana/*.json")]
    named = {m for f in files for m in re.findall(r"\bjambo_[a-z_]+", f.read_text())}
    assert files and named
    assert named <= exported, named - exported
