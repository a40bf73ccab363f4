"""Prometheus metrics: requests by route template and status, latency, requests shed, database
outages and pools, mail sends and failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:  # the handle counts its outages here: importing it at run time would loop
    from app.config import Settings
    from app.db.database import Database

REQUESTS = Counter("jambo_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "jambo_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
POOL = Gauge("jambo_db_pool_connections", "Database pool connections", ["pool", "state"])
SHED = Counter("jambo_requests_shed_total", "Requests answered 503 over MAX_REQUESTS_IN_FLIGHT")
DB_UNAVAILABLE = Counter(
    "jambo_db_unavailable_total", "Database outages answered as unavailable (once per failure)"
)
MAIL_SENDS = Counter("jambo_mail_sends_total", "Mail sends attempted through SMTP")
MAIL_FAILURES = Counter("jambo_mail_failures_total", "Mail sends that failed (no message taken)")


def watch_pools(db: Database, settings: Settings) -> None:
    """Report the SQLAlchemy pool and the raw read pool, use and capacity, at every scrape."""
    pool = db.engine.sync_engine.pool
    POOL.labels("sqlalchemy", "checked_out").set_function(lambda: pool.checkedout())  # type: ignore[attr-defined]
    POOL.labels("sqlalchemy", "idle").set_function(lambda: pool.checkedin())  # type: ignore[attr-defined]
    POOL.labels("read", "size").set_function(lambda: db.read_pool_size()[0])
    POOL.labels("read", "idle").set_function(lambda: db.read_pool_size()[1])
    # Capacity as both pools are built (app/db/engine.py, app/services.py), so that a
    # saturation alert can divide use by it; a negative overflow is SQLAlchemy's "no limit".
    overflow = settings.db_max_overflow
    POOL.labels("sqlalchemy", "max").set(
        settings.db_pool_size + overflow if overflow >= 0 else float("inf")
    )
    POOL.labels("read", "max").set(settings.db_pool_size)
