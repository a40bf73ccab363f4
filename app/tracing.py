"""OpenTelemetry tracing, switched on by the standard OTEL_* variables and by nothing else.

On when the environment names an exporter (`OTEL_TRACES_EXPORTER`, not `none`) or an OTLP
endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless
`OTEL_SDK_DISABLED=true`; variables that only tune (service name, sampler, `OTEL_BSP_*`,
resource) switch nothing on, since platforms set those everywhere. Off, neither the SDK nor
the exporter nor the instrumentation is imported, no middleware is added and asyncpg is left
untouched. On, each worker process builds its own provider and batch processor (and its
export thread) when `create_app` runs in it and flushes them when its lifespan ends; the SDK
reads the rest of its variables itself. An exporter or protocol this build lacks is logged
and the service runs untraced rather than not at all.

Spans come from the edges only, never from the services:
- the request: `TracingMiddleware`. Not opentelemetry-instrumentation-asgi (it names the span
  by the raw path and records the URL with its query string and the client's address, to be
  taken off again under names the conventions keep renaming), nor FastAPI's own telemetry
  (0.16x: `url.path` and `url.query` with their values, spans for dependencies, endpoint and
  serialization, absent from FastAPI versions still allowed here; it switches itself on when
  a global tracer provider is set, which this module therefore never does).
- the database: opentelemetry-instrumentation-asyncpg, which also traces the prepared
  statements SQLAlchemy's asyncpg dialect runs: both paths, each statement once (an
  SQLAlchemy instrumentation on top would double them).
- the mailer: `traced_mailer`, a span around each SMTP send.

No span carries a personal value: every tracer hands out spans through `_Guarded`, which keeps
the attribute keys in `ALLOWED` only (the statement text is kept: every value in it is a bind
parameter) and records an exception by its type, without message or stack trace (asyncpg's
message for a value it could not encode quotes the value).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import add_fields

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.config import Settings
    from app.mail import Mailer

log = logging.getLogger("jambo.tracing")

# The only attribute keys a span may carry (older and current semantic-convention names).
ALLOWED = frozenset(
    (
        # the request
        "http.request.method http.route http.response.status_code url.scheme"
        " network.protocol.version"
        # a database statement
        " db.system db.system.name db.name db.namespace db.user db.statement db.query.text"
        " db.operation db.operation.name net.peer.name net.peer.port net.transport"
        " network.transport"
        # the database or the mail server; a failure, by its type
        " server.address server.port network.protocol.name error.type"
    ).split()
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_started = False
_provider: Any = None  # the SDK's TracerProvider, once tracing is on in this process
_tracer: Any = None  # the guarded tracer for our own spans


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether these variables switch tracing on (see the module's docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        return any(n.strip() not in ("", "none") for n in named.split(","))
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def start() -> bool:
    """Switch tracing on in this process if the environment asks for it; True when on.

    Once per process: a forked child keeps its parent's provider (the SDK restarts the
    batch processor's thread after a fork); uvicorn's workers are spawned, each starts its own.
    """
    global _started, _provider, _tracer
    if not _started:
        _started = True
        if wanted(os.environ):
            _provider, _tracer = _build()
    return _tracer is not None


def install(app: FastAPI) -> None:
    """Trace the app's requests when tracing is on (nothing otherwise): the server span
    middleware, the trace and span ids on log lines, and a flush when the lifespan ends."""
    if not start():
        return
    app.add_middleware(TracingMiddleware, tracer=_tracer)
    add_fields(_current_ids)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        try:
            async with inner(application) as state:
                yield state
        finally:
            await asyncio.to_thread(flush)

    app.router.lifespan_context = lifespan


def flush() -> None:
    """Export every finished span now (blocking; bounded by the exporter's timeout)."""
    if _provider is not None:
        _provider.force_flush()


def traced_mailer(mailer: Mailer, settings: Settings) -> Mailer:
    """The mailer, with a span around each SMTP send while tracing is on."""
    if _tracer is None or not settings.smtp_host:
        return mailer
    return _TracedMailer(mailer, _tracer, settings.smtp_host, settings.smtp_port)


def adopt_env_files(files: Any) -> None:
    """Export the OTEL_* variables of the settings' .env files, which the SDK does not read;
    a variable already in the environment wins, as it does for the settings."""
    from dotenv import dotenv_values

    paths = [files] if isinstance(files, str | Path) else list(files or ())
    for path in reversed(paths):  # of two files the later wins, as in pydantic-settings
        if not os.path.isfile(path):
            continue
        for key, value in dotenv_values(path).items():
            if key.startswith("OTEL_") and value:
                os.environ.setdefault(key, value)


# ------------------------------------------------------------------------ building


def _build() -> tuple[Any, Any]:
    """The provider, its batch processors and the asyncpg instrumentation; (None, None) when
    the exporter asked for is not to be had."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporters = _exporters(os.environ)
    if not exporters:
        return None, None
    # Each worker is its own process: its pid tells them apart in a trace.
    resource = Resource.create({"process.pid": os.getpid()})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "jambo"}))
    provider = TracerProvider(resource=resource)  # sampler and span limits from OTEL_*
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_* itself
    guarded = _GuardedProvider(provider)
    # Not made the global provider: FastAPI's own telemetry (recent versions) switches itself
    # on when one is set, and its server span records the path and the query string with
    # their values, and more spans per request. The provider is handed over instead.
    # Statements are traced as parts of a sampled request: one run outside any (the read
    # replica's lag watcher, twice a second per worker) would be a trace of its own, noise,
    # and under an unsampled request's span it would be built only to be dropped.
    statements = _GuardedProvider(provider, children_only=True)
    AsyncPGInstrumentor(capture_parameters=False).instrument(tracer_provider=statements)
    log.info(
        "tracing on",
        extra={"exporters": [type(e).__name__ for e in exporters], "pid": os.getpid()},
    )
    return provider, guarded.get_tracer("jambo")


def _exporters(environ: Mapping[str, str]) -> list[Any]:
    """The span exporters OTEL_TRACES_EXPORTER names (`otlp` when only an endpoint is set)."""
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    exporters: list[Any] = []
    for name in (n.strip() for n in named.split(",")):
        if name in ("", "none"):
            continue
        if name == "otlp":
            protocol = (
                environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"  # the specification's default; the Python SDK's is grpc
            ).strip()
            exporter = _otlp(protocol)
            if exporter is None:
                return []
            exporters.append(exporter)
        elif name == "console":  # development: one JSON object per span on stderr
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(
                ConsoleSpanExporter(
                    out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n"
                )
            )
        else:
            log.error("tracing off: OTEL_TRACES_EXPORTER=%s is not supported (otlp, console)", name)
            return []
    return exporters


def _otlp(protocol: str) -> Any:
    """The OTLP span exporter for `protocol` (endpoint, headers, timeout from OTEL_*)."""
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError:
            log.error(
                "tracing off: OTLP over grpc needs opentelemetry-exporter-otlp-proto-grpc,"
                " which this build does not install; use http/protobuf (port 4318)"
            )
            return None
        return GrpcSpanExporter()
    log.error("tracing off: OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported", protocol)
    return None


class _GuardedProvider:
    """Hands out `_Guarded` tracers over the SDK's provider (to our code and to asyncpg's
    instrumentation alike; duck-typed, so that the API need not be imported with the module)."""

    def __init__(self, provider: Any, children_only: bool = False) -> None:
        self._provider = provider
        self._children_only = children_only

    def get_tracer(self, name: str, *args: Any, **kwargs: Any) -> _Guarded:
        return _Guarded(self._provider.get_tracer(name, *args, **kwargs), self._children_only)


class _Guarded:
    """A tracer whose spans start with the ALLOWED attribute keys only and record an
    exception as its type: no event with its message and stack trace, no status text. With
    `children_only`, a span is started only under a recorded parent (a request's span that
    was sampled); otherwise a non-recording one stands in, at almost no cost."""

    def __init__(self, tracer: Any, children_only: bool = False) -> None:
        from opentelemetry.trace import (
            INVALID_SPAN,
            SpanKind,
            StatusCode,
            get_current_span,
            use_span,
        )

        self._tracer = tracer
        self._children_only = children_only
        self._current = get_current_span
        self._nothing = INVALID_SPAN
        self._internal = SpanKind.INTERNAL
        self._error = StatusCode.ERROR
        self._use_span = use_span

    def start_span(
        self,
        name: str,
        context: Any = None,
        kind: Any = None,
        attributes: Mapping[str, Any] | None = None,
        **options: Any,  # links, start_time; record_exception and the like are overruled
    ) -> Any:
        if self._children_only and not self._current(context).is_recording():
            return self._nothing
        if attributes:
            attributes = {k: v for k, v in attributes.items() if k in ALLOWED}
        options.update(record_exception=False, set_status_on_exception=False)
        kind = self._internal if kind is None else kind
        return self._tracer.start_span(name, context, kind, attributes, **options)

    @contextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Any = None,
        kind: Any = None,
        attributes: Mapping[str, Any] | None = None,
        end_on_exit: bool = True,
        set_status_on_exception: bool = True,
        **options: Any,
    ) -> Iterator[Any]:
        span = self.start_span(name, context, kind, attributes, **options)
        with self._use_span(
            span, end_on_exit=end_on_exit, record_exception=False, set_status_on_exception=False
        ):
            try:
                yield span
            except Exception as exc:
                if set_status_on_exception:
                    span.set_status(self._error)
                    span.set_attribute("error.type", type(exc).__qualname__)
                raise


def _current_ids() -> dict[str, str]:
    """The current trace and span ids, as W3C traceparent writes them (none outside a span)."""
    from opentelemetry.trace import get_current_span

    span_context = get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {"trace_id": f"{span_context.trace_id:032x}", "span_id": f"{span_context.span_id:016x}"}


# ------------------------------------------------------------------------ the edges


class TracingMiddleware:
    """One server span per HTTP request. The incoming `traceparent` (W3C; OTEL_PROPAGATORS
    decides) is its parent; it is named `METHOD /route/{template}` once routing has matched
    (only the method when nothing did) and carries the method, route, status code, scheme and
    protocol version: never the path, the query string, a header or the client's address."""

    def __init__(self, app: ASGIApp, tracer: Any) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind, StatusCode

        self.app = app
        self.tracer = tracer
        self._extract = propagate.extract
        self._fields = frozenset(f.encode("latin-1") for f in propagate.get_global_textmap().fields)
        self._attach, self._detach = context.attach, context.detach
        self._in_context = trace.set_span_in_context
        self._server = SpanKind.SERVER
        self._error = StatusCode.ERROR

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in self._fields
        }
        parent = self._extract(carrier) if carrier else None
        method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
        name = "HTTP" if method == "_OTHER" else method
        span = self.tracer.start_span(
            name,
            parent,
            self._server,
            {
                "http.request.method": method,
                "network.protocol.version": scope.get("http_version", "1.1"),
            },
        )
        token = self._attach(self._in_context(span, parent))
        status = 0

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        failure: str | None = None
        try:
            await self.app(scope, receive, send_traced)
        except BaseException as exc:
            failure = type(exc).__qualname__
            raise
        finally:
            # As the edge left it: a trusted proxy's X-Forwarded-Proto applied.
            span.set_attribute("url.scheme", scope.get("scheme", "http"))
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{name} {route}")
                span.set_attribute("http.route", route)
            if not status and failure:
                status = 500  # what the server's error handler, further out, answers
            if status:
                span.set_attribute("http.response.status_code", status)
            if failure or status >= 500:
                span.set_attribute("error.type", failure or str(status))
                span.set_status(self._error)
            self._detach(token)
            span.end()


class _TracedMailer:
    """A mailer whose sends are client spans: the mail server's address and port, never the
    recipient, subject or body."""

    def __init__(self, mailer: Mailer, tracer: Any, host: str, port: int) -> None:
        from opentelemetry.trace import SpanKind

        self._mailer = mailer
        self._tracer = tracer
        self._client = SpanKind.CLIENT
        self._attributes = {
            "server.address": host,
            "server.port": port,
            "network.protocol.name": "smtp",
        }

    async def send(self, to: str, subject: str, body: str) -> None:
        with self._tracer.start_as_current_span(
            "smtp send", kind=self._client, attributes=self._attributes
        ):
            await self._mailer.send(to, subject, body)
