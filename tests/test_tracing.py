"""OpenTelemetry tracing: the real service (two workers) exporting to a real OTLP/HTTP receiver.

One traced `jambo serve` runs a few requests, each with its own `traceparent`, and is then
stopped: its batch processors wait a minute between exports, so every span checked here was
sent by the flush at shutdown, from whichever worker served the request.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app import logs, tracing
from app.config import Settings
from app.main import create_app
from tests.conftest import STAFF, TABLES, Mailbox, _plain, start_service
from tests.otlp_receiver import ReceivedSpan, Receiver

SERVER, CLIENT = 2, 3  # the protobuf's SpanKind values
# What the requests below send that no span may carry.
EMAIL = "wanjiru.trace@example.org"
FIRST, LAST = "Wanjiru", "Kamau-Otieno"
SEARCH = "Nyambura"


def traceparent() -> tuple[str, str, str]:
    """A sampled W3C traceparent header and its trace and parent span ids."""
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{parent}-01", trace_id, parent


@dataclass
class Run:
    """What the traced service was asked and what came out of it."""

    traces: dict[str, tuple[str, str]]  # request → (trace id, parent span id)
    spans: list[ReceivedSpan]
    log_lines: list[dict[str, Any]]
    customer_ulid: str
    mails: int

    def of(self, request: str) -> list[ReceivedSpan]:
        trace_id = self.traces[request][0]
        return [s for s in self.spans if s.trace_id == trace_id]

    def server_span(self, request: str) -> ReceivedSpan:
        (span,) = [s for s in self.of(request) if s.kind == SERVER]
        return span


@pytest.fixture(scope="module")
def run(
    database_url: str, mailbox: Mailbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    log_file = tmp_path_factory.mktemp("tracing") / "service.log"
    traces: dict[str, tuple[str, str]] = {}

    def traced(name: str) -> dict[str, str]:
        header, trace_id, parent = traceparent()
        traces[name] = (trace_id, parent)
        return {**STAFF, "traceparent": header, "X-Request-ID": f"trace-test-{name}"}

    mailbox.messages.clear()
    with Receiver() as receiver, log_file.open("wb") as out:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "jambo-test",
            "OTEL_BSP_SCHEDULE_DELAY": "60000",  # nothing leaves before the flush at shutdown
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(mailbox.port),
            "LOG_LEVEL": "INFO",
        }
        proc, base = start_service(database_url, env=env, args=("--workers", "2"), stdout=out)
        try:
            with httpx.Client(base_url=base, timeout=30) as http:
                created = http.post(
                    "/api/customers",
                    json={
                        "first_name": FIRST,
                        "last_name": LAST,
                        "email": EMAIL,
                        "nationality": "KE",
                        "dob": "1990-01-01",
                        "phone_number": "0712345678",
                    },
                    headers=traced("create"),
                )
                assert created.status_code == 201, created.text
                ulid = created.json()["body"]["ulid"]
                got = http.get(f"/api/v1/customers/{ulid}", headers=traced("get"))
                assert got.status_code == 200, got.text
                listed = http.get(
                    "/api/v1/customers", params={"lastName": LAST}, headers=traced("list")
                )
                assert listed.status_code == 200, listed.text
                searched = http.get(
                    "/api/v1/loyalty/", params={"search": SEARCH}, headers=traced("search")
                )
                assert searched.status_code == 200, searched.text
                code = http.post(
                    "/api/auth/email-code", json={"email": EMAIL}, headers=traced("mail")
                )
                assert code.status_code == 202, code.text
                deadline = time.monotonic() + 15
                while not mailbox.messages and time.monotonic() < deadline:
                    time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        wanted = {trace_id for trace_id, _ in traces.values()}
        spans = receiver.wait_for(
            lambda got: wanted <= {s.trace_id for s in got if s.kind == SERVER}, timeout=10
        )
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    yield Run(traces, spans, lines, ulid, len(mailbox.messages))

    async def clean() -> None:
        conn = await asyncpg.connect(_plain(database_url))
        try:
            await conn.execute(f"TRUNCATE {TABLES} CASCADE")
        finally:
            await conn.close()

    asyncio.run(clean())


def test_every_request_has_its_server_span_from_either_worker(run: Run) -> None:
    for name in run.traces:
        run.server_span(name)  # exactly one each: flushed at shutdown by the worker that served it
    pids = {s.resource.get("process.pid") for s in run.spans}
    assert pids and None not in pids
    assert {s.resource["service.name"] for s in run.spans} == {"jambo-test"}


def test_the_server_span_continues_the_incoming_trace_named_by_route(run: Run) -> None:
    span = run.server_span("get")
    assert span.parent_span_id == run.traces["get"][1]
    assert span.name == "GET /api/v1/customers/{customer_id}"
    assert span.attributes == {
        "http.request.method": "GET",
        "http.route": "/api/v1/customers/{customer_id}",
        "http.response.status_code": 200,
        "url.scheme": "http",
        "network.protocol.version": "1.1",
    }
    assert run.server_span("create").name == "POST /api/customers"
    assert run.server_span("search").name == "GET /api/v1/loyalty/"


def test_database_statements_are_child_spans_without_parameters(run: Run) -> None:
    server = run.server_span("get")
    statements = [s for s in run.of("get") if s.attributes.get("db.system") == "postgresql"]
    assert statements, [s.name for s in run.of("get")]
    for span in statements:
        assert span.kind == CLIENT
        assert span.parent_span_id == server.span_id
        assert "$1" in span.attributes["db.statement"]  # the raw pool's by-id read
        assert not any("parameters" in key for key in span.attributes)


def test_sqlalchemy_statements_are_traced_once(run: Run) -> None:
    """SQLAlchemy's asyncpg dialect is traced by the asyncpg instrumentation (prepared
    statements): every statement of the create appears, none twice."""
    statements = [s for s in run.of("create") if s.attributes.get("db.system") == "postgresql"]
    inserts = [s for s in statements if "INSERT INTO customers" in s.attributes["db.statement"]]
    assert len(inserts) == 1, [s.attributes["db.statement"][:60] for s in statements]
    server = run.server_span("create")
    assert all(s.trace_id == server.trace_id for s in statements)


def test_a_mail_send_is_a_client_span_without_the_message(run: Run) -> None:
    assert run.mails == 1
    (smtp,) = [s for s in run.of("mail") if s.name == "smtp send"]
    assert smtp.kind == CLIENT
    assert smtp.parent_span_id == run.server_span("mail").span_id
    assert set(smtp.attributes) == {"server.address", "server.port", "network.protocol.name"}
    assert smtp.attributes["server.address"] == "127.0.0.1"


def test_no_span_carries_a_personal_value(run: Run) -> None:
    personal = [EMAIL, FIRST, LAST, SEARCH, run.customer_ulid]
    forbidden_keys = {"url.query", "url.full", "url.path", "http.target", "http.url"}
    forbidden_keys |= {"client.address", "net.peer.ip", "db.statement.parameters"}
    for span in run.spans:
        assert not forbidden_keys & set(span.attributes), span
        texts = [span.name, span.status_message, *map(str, span.attributes.values())]
        texts += [f"{name} {attrs}" for name, attrs in span.events]
        for text in texts:
            for value in personal:
                assert value.lower() not in text.lower(), (value, span.name, text)


def test_log_lines_of_a_request_carry_its_trace_and_span_ids(run: Run) -> None:
    (access,) = [
        line
        for line in run.log_lines
        if line["logger"] == "jambo.access" and line.get("request_id") == "trace-test-get"
    ]
    server = run.server_span("get")
    assert access["trace_id"] == server.trace_id == run.traces["get"][0]
    assert access["span_id"] == server.span_id
    served = [line for line in run.log_lines if "request_id" in line]
    assert len(served) >= len(run.traces)
    assert all("trace_id" in line and "span_id" in line for line in served)


def test_off_without_otel_variables(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """No OTEL_* variable: no middleware, asyncpg untouched, no log fields."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(tracing, "_started", False)
    app = create_app(settings)
    assert not any(m.cls is tracing.TracingMiddleware for m in app.user_middleware)
    assert tracing._tracer is None
    assert not hasattr(asyncpg.connection.Connection.fetch, "__wrapped__")
    assert tracing._current_ids not in logs._fields


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "jambo", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ],
)
def test_what_switches_tracing_on(environ: dict[str, str], on: bool) -> None:
    assert tracing.wanted(environ) is on


def test_env_file_otel_variables_reach_the_sdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jambo serve` exports OTEL_* from .env (the SDK reads only the environment); a
    variable already set wins."""
    env_file = tmp_path / ".env"
    env_file.write_text(
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://from-file:4318\nOTEL_SERVICE_NAME=from-file\n"
        "JWT_SECRET=not-exported\n"
    )
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-environment")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    try:
        tracing.adopt_env_files((str(tmp_path / "missing.env"), str(env_file)))
        assert os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://from-file:4318"
        assert os.environ["OTEL_SERVICE_NAME"] == "from-environment"
        assert "JWT_SECRET" not in os.environ
    finally:  # later tests start services with this environment
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)


def _in_memory() -> tuple[Any, Any]:
    """A guarded tracer over an SDK provider that keeps its spans in memory."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracing._GuardedProvider(provider).get_tracer("test"), exporter


def test_a_failed_statement_leaves_neither_its_parameters_nor_its_message() -> None:
    """What an instrumentation may hand over (parameters, a message quoting a value) stops at
    the guard: allowed keys only, the exception by its type."""
    tracer, exporter = _in_memory()
    with pytest.raises(ValueError):
        with tracer.start_as_current_span(
            "SELECT",
            attributes={
                "db.system": "postgresql",
                "db.statement": "SELECT * FROM customers WHERE email = $1",
                "db.statement.parameters": f"('{EMAIL}',)",
                "url.query": f"email={EMAIL}",
            },
        ):
            raise ValueError(f"invalid input for query argument $1: '{EMAIL}'")
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {
        "db.system": "postgresql",
        "db.statement": "SELECT * FROM customers WHERE email = $1",
        "error.type": "ValueError",
    }
    assert not span.events
    assert span.status.status_code.name == "ERROR" and not span.status.description


async def test_the_server_span_never_holds_the_path_or_the_query() -> None:
    from fastapi import FastAPI

    tracer, exporter = _in_memory()
    inner = FastAPI()

    @inner.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @inner.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"cannot mail {EMAIL}")

    app = tracing.TracingMiddleware(inner, tracer)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get(f"/items/{SEARCH}?email={EMAIL}")).status_code == 200
        assert (await http.get(f"/nowhere/{SEARCH}")).status_code == 404
        await http.post("/items/x", headers={"traceparent": "garbage"})
        await http.get("/boom")
    found, missing, wrong_method, failed = exporter.get_finished_spans()
    assert (found.name, found.attributes["http.route"]) == (
        "GET /items/{item_id}",
        "/items/{item_id}",
    )
    assert (missing.name, missing.attributes["http.response.status_code"]) == ("GET", 404)
    assert "http.route" not in missing.attributes
    assert wrong_method.name == "POST /items/{item_id}" and wrong_method.parent is None
    assert failed.attributes["error.type"] == "RuntimeError"
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.status.status_code.name == "ERROR" and not failed.status.description
    for span in (found, missing, wrong_method, failed):
        assert not span.events
        for value in [span.name, *map(str, (span.attributes or {}).values())]:
            assert EMAIL not in value and SEARCH not in value


def test_statements_outside_a_request_make_no_trace_of_their_own() -> None:
    """The asyncpg instrumentation's tracer starts spans only under a sampled parent: a query
    the replica's lag watcher runs between requests would otherwise be a one-span trace."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
    from opentelemetry.trace import INVALID_SPAN

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ours = tracing._GuardedProvider(provider).get_tracer("jambo")
    statements = tracing._GuardedProvider(provider, children_only=True).get_tracer("asyncpg")
    with statements.start_as_current_span("SELECT") as alone:
        assert not alone.is_recording()
    with ours.start_as_current_span("GET /x"), statements.start_as_current_span("SELECT"):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["SELECT", "GET /x"]
    unsampled = TracerProvider(sampler=ALWAYS_OFF)
    ours = tracing._GuardedProvider(unsampled).get_tracer("jambo")
    statements = tracing._GuardedProvider(unsampled, children_only=True).get_tracer("asyncpg")
    with ours.start_as_current_span("GET /x"), statements.start_as_current_span("SELECT") as s:
        assert s is INVALID_SPAN  # not even built: the request's span was not sampled


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ["OTLPSpanExporter"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["OTLPSpanExporter", "ConsoleSpanExporter"]),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, []),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, []),
    ],
)
def test_the_exporters_named(environ: dict[str, str], exporters: list[str]) -> None:
    """http/protobuf by default (the specification's default); what this build cannot export
    to leaves tracing off, with a log line, rather than the service down."""
    assert [type(e).__name__ for e in tracing._exporters(environ)] == exporters
