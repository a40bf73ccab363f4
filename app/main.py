"""The application factory: settings, lifespan, middleware, routers and error handlers."""

import asyncio
import gc
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.config import Settings, get_settings
from app.contracts import oauth as auth
from app.contracts import ops as health
from app.contracts.guards import Admission, HostCheck
from app.contracts.http import JSON
from app.contracts.jambo import router as customers
from app.contracts.jambo.openapi import PART as JAMBO_DOCUMENT
from app.contracts.lane import FastLane
from app.contracts.loyalty import http as loyalty_http
from app.contracts.loyalty import router as loyalty
from app.contracts.loyalty.openapi import PART as LOYALTY_DOCUMENT
from app.contracts.openapi import DocumentContext, DocumentPart
from app.contracts.openapi import finish as finish_document
from app.contracts.redoc import add_redoc
from app.contracts.routing import Renderer, render_problem, renderer_for_path
from app.contracts.v1 import events as change_feed
from app.contracts.v1 import router as customers_v1
from app.contracts.v1.openapi import PART as V1_DOCUMENT
from app.contracts.v3 import language
from app.contracts.v3 import router as me
from app.contracts.v3.openapi import LANGUAGE_PART as LANGUAGE_DOCUMENT
from app.contracts.v3.openapi import PART as V3_DOCUMENT
from app.db.migrations import head_revision
from app.db.replica import PrimaryReadsMiddleware
from app.events.relay import Relay
from app.housekeeping import Housekeeper
from app.idempotency.guard import REPLAYED
from app.logs import setup_logging
from app.metrics import exposition, watch_pools, worker_stopped
from app.middleware import EdgeMiddleware, ForwardedHeaders
from app.services import Services, open_services
from app.tracing import install as install_tracing

DESCRIPTION = """One store of customers and loyalty-programme members behind four contracts:
**Jambo customers** (`/api/customers`, `/api/customer/…`), **Customer Management API v1**
(`/api/v1/customers`), the **loyalty register** (`/api/v1/loyalty/`) and the **v3 self-service
API** (`/api/v3/customer/…`). Authenticate with `Authorization: Bearer <JWT>`: on this page,
**Authorize** with an API client's id and secret (`make run` prints one) or paste a token; a
program gets one from `POST /api/auth/token`."""


# What each contract states in /openapi.json beyond FastAPI's document (its own package says).
DOCUMENT_PARTS: tuple[DocumentPart, ...] = (
    JAMBO_DOCUMENT,
    V1_DOCUMENT,
    LOYALTY_DOCUMENT,
    V3_DOCUMENT,
    LANGUAGE_DOCUMENT,
    auth.PART,
    health.PART,
)


# What a script on another origin may read of an answer (CORS hides any other header): the
# version for If-Match, where a creation went, the request id to quote, when to retry, how
# to authenticate, and whether an Idempotency-Key answer was a replay.
EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "Content-Location",
    "X-Request-ID",
    "Retry-After",
    "WWW-Authenticate",
    REPLAYED,
]


def _unmatched_renderers() -> list[tuple[str, Renderer]]:
    """Which contract renders a 404/405 for a path no route matched."""
    return [
        ("/api/customers", customers.render),
        ("/api/customer/", customers.render),
        ("/api/auth/", auth.render),
        ("/api/v1/customers", customers_v1.render),
        ("/api/v1/events", customers_v1.render),
        ("/api/v1/loyalty", loyalty_http.render),
        ("/api/v3/customer", me.render),
        ("/api/v3/customer/language", language.render),
    ]


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method the documented routes serve at this request's path (from the OpenAPI)."""
    table: list[tuple[re.Pattern[str], list[str]]] | None = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for template, operations in app.openapi()["paths"].items():
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            table.append((re.compile(f"^{pattern}$"), [m.upper() for m in operations]))
        app.state.allow_table = table
    path = request.scope["path"][len(request.scope.get("root_path", "")) :] or "/"
    methods = {m for pattern, ms in table if pattern.fullmatch(path) for m in ms}
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return sorted(methods, key=lambda m: order.index(m) if m in order else len(order))


def _documented_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Validation errors are 400 in every contract, never FastAPI's 422; document what any
    route may answer besides its own codes (413 for bodies, 503 while the database is away)."""
    for operations in schema["paths"].values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            # FastAPI's own 422 goes; one a route documents itself (Idempotency-Key) stays.
            own = responses.get("422", {}).get("description") != "Validation Error"
            invalid = None if own else responses.pop("422", None)
            if invalid is not None and "400" not in responses:
                responses["400"] = {"description": "Invalid request"}
            if "security" in operation:
                responses.setdefault("401", {"description": "Missing or invalid bearer token"})
                responses.setdefault("403", {"description": "Not allowed for this token"})
            if method in ("post", "put", "patch"):
                responses.setdefault("413", {"description": "Request body over the size limit"})
            if any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])):
                responses.setdefault(
                    "429", {"description": "The caller holds too many live Idempotency-Keys"}
                )
            responses.setdefault("503", {"description": "Database or mail server unavailable"})
    schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
    schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
    return schema


def start_relay(services: Services, settings: Settings) -> asyncio.Task[None] | None:
    """The change feed's broker relay, when EVENTS_BROKER_URL names a broker."""
    if settings.events_broker_url is None or not settings.events_broker_url.get_secret_value():
        return None
    relay = Relay(
        services.events,
        services.changes,
        settings.events_broker_url.get_secret_value(),
        services.direct_dsn,
    )
    return asyncio.create_task(relay.run())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the engine and services on start-up; dispose of the pools on shutdown."""
    settings: Settings = app.state.settings
    async with open_services(settings) as services:
        await services.db.open()
        watching = watch_pools(services.db, services.settings)
        app.state.services = services
        app.state.head_revision = head_revision()
        housekeeper = Housekeeper(
            services.db, settings.audit_retention_days, settings.housekeeping_interval_seconds
        )
        purging = asyncio.create_task(housekeeper.run())
        services.changes.start()
        relaying = start_relay(services, settings)
        # Everything built so far lives as long as the process: keep it out of the
        # collector's full passes, which otherwise stall the event loop under load.
        gc.freeze()
        try:
            yield
        finally:
            for task in (purging, relaying, watching):
                if task is not None:
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
            await services.changes.close()
            worker_stopped()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A configured application (settings from the environment unless given)."""
    settings = settings or get_settings()
    setup_logging(settings.log_level)
    app = FastAPIOffline(
        title="Jambo",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,  # app.contracts.redoc's page instead: nothing fetched from outside
        # FastAPI's own OpenTelemetry stays off: app/tracing.py traces without personal
        # values (FastAPI's records paths and query strings), and the per-request check of
        # whether it should run was a visible cost on the hottest reads.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    add_redoc(app)
    app.state.settings = settings
    renderers = _unmatched_renderers()

    # Busiest routes first: a request is matched against the routes in order.
    for module in (customers_v1, customers, me, language, loyalty, change_feed, auth, health):
        # The routers carry full paths and no prefix: their routes join the app's own list.
        # (include_router would nest them; FastAPI then walks every nested router for each
        # request, which was half of a request's time in a profile.)
        app.router.routes.extend(module.router.routes)

    @app.get(
        "/metrics",
        tags=["Operations"],
        summary="Prometheus metrics",
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    async def unmatched(request: Request, exc: Exception) -> Response:
        if isinstance(exc, StarletteHTTPException) and exc.status_code == 405:
            # Starlette names only the first route that matched the path; list them all.
            exc.headers = {"Allow": ", ".join(_allowed_methods(app, request))}
        render = renderer_for_path(request.url.path, renderers)
        if render is None:
            status = exc.status_code if isinstance(exc, StarletteHTTPException) else 400
            return JSON(
                {"detail": getattr(exc, "detail", "Bad request.")},
                status_code=status,
                headers=getattr(exc, "headers", None),
            )
        return render_problem(request, exc, render)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = _documented_errors(get_openapi_schema())
            context = DocumentContext(staff_scopes=auth.staff_scopes(app.routes))
            app.openapi_schema = finish_document(document, DOCUMENT_PARTS, context)
        return app.openapi_schema

    get_openapi_schema = app.openapi
    app.openapi = openapi  # type: ignore[method-assign]

    app.add_exception_handler(StarletteHTTPException, unmatched)
    app.add_exception_handler(RequestValidationError, unmatched)

    # The hot reads by id straight to their handlers, inside everything added below.
    app.add_middleware(FastLane, router=app.router)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )

    def render_for(path: str) -> Renderer | None:
        return renderer_for_path(path, renderers)

    if settings.database_read_url:  # which requests may read the replica
        app.add_middleware(
            PrimaryReadsMiddleware,
            window=settings.db_read_after_write_seconds,
            root_path=settings.root_path,
        )
    # Forwarded headers, ROOT_PATH, request ids, access lines, metrics, the Host check,
    # admission and the security headers: one layer (app/middleware.py). Done here rather
    # than by the server so that every way of running the app behaves the same.
    app.add_middleware(
        EdgeMiddleware,
        forwarded=ForwardedHeaders(settings.forwarded_allow_ips),
        root_path=settings.root_path,
        hosts=HostCheck(settings.allowed_hosts, render_for),
        admission=Admission(
            settings.max_requests_in_flight,
            max(settings.max_body_bytes, loyalty_http.bulk_body_limit(settings)),
            render_for,
        ),
    )
    # A server span per request when OTEL_* asks for one (nothing otherwise); outside the
    # edge, so that the access line carries the trace and span ids.
    install_tracing(app)
    return app
