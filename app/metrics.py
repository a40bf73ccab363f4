"""Prometheus metrics: requests by route template and status, latency, requests shed, database
outages and pools, mail sends and failures.

One process keeps its metrics in memory, as prometheus_client does by default (tests, `uvicorn`
run directly, `jambo serve` with one worker). With several workers a scrape reaches whichever
worker accepts it, so each one's own counters would alternate at every scrape and read as
resets. There, every worker writes its series to files in one directory, PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode), and /metrics sums the files of every worker, dead ones'
counts included, so that the service's counters never go back. The price is an mmap'd write per
count instead of an addition in memory: +2.8 µs of CPU a request (bench/README.md). Scraping each
worker on a port of its own was the other way; it needs a pid label on every series and sums in
every rule, and the series of a restarted worker are new ones.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

if TYPE_CHECKING:  # the handle counts its outages here: importing it at run time would loop
    from app.config import Settings
    from app.db.database import Database

log = logging.getLogger("jambo.metrics")

SHARED_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name: it reads it on import
# How often each worker writes its pools' use to the shared files (a scrape reads the last).
POOL_REFRESH_SECONDS = 1.0
# How often `jambo serve` looks for workers that died without shutting down (killed).
SWEEP_SECONDS = 5.0

REQUESTS = Counter("jambo_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "jambo_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
# Summed over the live workers: a pod's pools, in use and capacity alike (the saturation
# ratio is then the pod's); a worker that is gone takes its connections out of the sum.
POOL = Gauge(
    "jambo_db_pool_connections",
    "Database pool connections",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
SHED = Counter("jambo_requests_shed_total", "Requests answered 503 over MAX_REQUESTS_IN_FLIGHT")
DB_UNAVAILABLE = Counter(
    "jambo_db_unavailable_total", "Database outages answered as unavailable (once per failure)"
)
MAIL_SENDS = Counter("jambo_mail_sends_total", "Mail sends attempted through SMTP")
MAIL_FAILURES = Counter("jambo_mail_failures_total", "Mail sends that failed (no message taken)")


def shared_dir() -> str | None:
    """The directory the workers share their metrics in, or None (in memory, one process)."""
    return os.environ.get(SHARED_DIR) or None


def exposition() -> bytes:
    """The text of /metrics: this process's metrics, or every worker's when they share files."""
    path = shared_dir()
    if path is None:
        return generate_latest()
    # A registry per scrape, as prometheus_client documents: the collector reads the files
    # as they are now (the process and platform collectors are left out: they would describe
    # only the worker that happens to answer).
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)
    return generate_latest(registry)


def watch_pools(db: Database, settings: Settings) -> asyncio.Task[None] | None:
    """Report the SQLAlchemy pool and the raw read pool, use and capacity, off the request
    path: read at each scrape in one process; with shared files, written by each worker every
    POOL_REFRESH_SECONDS by the task returned (to cancel at shutdown)."""
    pool = db.engine.sync_engine.pool
    # Capacity as both pools are built (app/db/engine.py, app/services.py), so that a
    # saturation alert can divide use by it; a negative overflow is SQLAlchemy's "no limit".
    overflow = settings.db_max_overflow
    POOL.labels("sqlalchemy", "max").set(
        settings.db_pool_size + overflow if overflow >= 0 else float("inf")
    )
    POOL.labels("read", "max").set(settings.db_pool_size)
    readings: list[tuple[Gauge, Callable[[], float]]] = [
        (POOL.labels("sqlalchemy", "checked_out"), lambda: pool.checkedout()),  # type: ignore[attr-defined]
        (POOL.labels("sqlalchemy", "idle"), lambda: pool.checkedin()),  # type: ignore[attr-defined]
        (POOL.labels("read", "size"), lambda: db.read_pool_size()[0]),
        (POOL.labels("read", "idle"), lambda: db.read_pool_size()[1]),
    ]
    if shared_dir() is None:
        for gauge, read in readings:
            gauge.set_function(read)
        return None

    # A function's value cannot be shared (prometheus_client calls it where it is scraped).
    def refresh() -> None:
        for gauge, read in readings:
            gauge.set(read())

    async def keep_refreshing() -> None:
        while True:
            await asyncio.sleep(POOL_REFRESH_SECONDS)
            refresh()

    refresh()  # before the first request, so that a scrape never misses a pool
    return asyncio.create_task(keep_refreshing())


def worker_stopped() -> None:
    """This worker's gauges leave /metrics (its counts stay: the totals never go back)."""
    path = shared_dir()
    if path is not None:
        mark_process_dead(os.getpid(), path)


def share_between_workers(workers: int) -> Callable[[], None]:
    """Before `jambo serve` starts its workers: give them one fresh directory to share their
    metrics in, and mark dead those that die without shutting down; returns what to call once
    they have all stopped.

    PROMETHEUS_MULTIPROC_DIR set by the operator is used (a directory that exists: the
    metrics were imported with it; an earlier run's files are removed: one directory per
    running service); otherwise several workers get a private temporary directory, removed
    at the end. One worker keeps its metrics in memory.
    """
    path = shared_dir()
    made = path is None
    if path is None:
        os.environ.pop(SHARED_DIR, None)  # set but empty: as unset
        if workers < 2:
            return lambda: None
        path = tempfile.mkdtemp(prefix="jambo-metrics-")
        os.environ[SHARED_DIR] = path
    else:
        # An earlier run's files would add its counts to ours; this process's own are live
        # (it imported the metrics already, and serves them itself with one worker).
        for stale in glob.glob(os.path.join(path, "*.db")):
            if not stale.endswith(f"_{os.getpid()}.db"):
                os.remove(stale)
    stop = threading.Event()
    sweeper = threading.Thread(
        target=_sweep_dead_workers, args=(path, stop), name="metrics-sweeper", daemon=True
    )
    sweeper.start()

    def stop_sharing() -> None:
        stop.set()
        sweeper.join()
        if made:
            shutil.rmtree(path, ignore_errors=True)
            os.environ.pop(SHARED_DIR, None)

    return stop_sharing


def _sweep_dead_workers(path: str, stop: threading.Event) -> None:
    """Mark dead every worker that left live gauges behind without a shutdown (killed by the
    supervisor, the kernel's OOM killer, a crash): otherwise its last pool readings would stay
    in the sums. A worker that shuts down marks itself (worker_stopped)."""
    while not stop.wait(SWEEP_SECONDS):
        for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
            pid = file.rsplit("_", 1)[-1].removesuffix(".db")
            if pid.isdigit() and not _running(int(pid)):
                log.info("metrics: worker %s is gone, its gauges leave /metrics", pid)
                with suppress(OSError):
                    mark_process_dead(int(pid), path)


def _running(pid: int) -> bool:
    """Whether a process with this id exists (a signal 0 delivers nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's: exists
    return True
