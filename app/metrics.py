"""Prometheus metrics: requests by route template and status, latency, database pools."""

from prometheus_client import Counter, Gauge, Histogram

from app.db.database import Database

REQUESTS = Counter("jambo_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "jambo_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
POOL = Gauge("jambo_db_pool_connections", "Database pool connections", ["pool", "state"])


def watch_pools(db: Database) -> None:
    """Report the SQLAlchemy pool and the raw read pool at every scrape."""
    pool = db.engine.sync_engine.pool
    POOL.labels("sqlalchemy", "checked_out").set_function(lambda: pool.checkedout())  # type: ignore[attr-defined]
    POOL.labels("sqlalchemy", "idle").set_function(lambda: pool.checkedin())  # type: ignore[attr-defined]
    POOL.labels("read", "size").set_function(lambda: db.read_pool_size()[0])
    POOL.labels("read", "idle").set_function(lambda: db.read_pool_size()[1])
