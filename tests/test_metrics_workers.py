"""/metrics under `jambo serve --workers 2`: whichever worker answers a scrape, it reports the
whole service (every worker's counts, the live workers' pools once), and a killed worker's
counts stay while its pools leave."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import SHARED_DIR, SWEEP_SECONDS, share_between_workers
from tests.conftest import STAFF, start_service, stop_service

POOL = "jambo_db_pool_connections"
REQUESTS = "jambo_http_requests_total"
# DB_POOL_SIZE 3 and DB_MAX_OVERFLOW 2 in each of the two workers.
CAPACITY = {"sqlalchemy": 2 * 5, "read": 2 * 3}


def scrape(base: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of one scrape, on a connection of its own (any worker may take it)."""
    response = httpx.get(f"{base}/metrics", headers={"Connection": "close"})
    assert response.status_code == 200
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]


def count(samples: list[tuple[str, dict[str, str], float]], route: str) -> float:
    """The requests counted for `route`, every method and status."""
    return sum(v for name, labels, v in samples if name == REQUESTS and labels["route"] == route)


def pools(samples: list[tuple[str, dict[str, str], float]]) -> list[tuple[str, str, float]]:
    return sorted((labels["pool"], labels["state"], v) for n, labels, v in samples if n == POOL)


def live_gauge_pids(folder: Path) -> set[int]:
    """The workers whose pool gauges are in the shared directory."""
    return {int(f.stem.rsplit("_", 1)[1]) for f in folder.glob("gauge_livesum_*.db")}


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def two_workers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A service of two workers sharing a directory the test can look into, which holds a
    stale file of an earlier run when the service starts."""
    folder = tmp_path_factory.mktemp("metrics")
    (folder / "counter_1.db").write_bytes(b"an earlier run's")
    env: dict[str, str | None] = {
        SHARED_DIR: str(folder),
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "2",
    }
    proc, base = start_service(database_url, env=env, args=("--workers", "2"))
    try:
        wait_for(lambda: len(live_gauge_pids(folder)) == 2, 60, "both workers started")
        yield base, folder
    finally:
        stop_service(proc)
    assert not live_gauge_pids(folder), "a worker that shut down left its gauges"


def test_every_scrape_counts_every_workers_requests(two_workers: Any) -> None:
    base, folder = two_workers
    assert not (folder / "counter_1.db").exists()  # the earlier run's file went
    sent = 0
    seen: list[float] = []
    for _ in range(12):
        for _ in range(2):  # a connection each: the workers share them
            response = httpx.get(f"{base}/api/customers", headers={**STAFF, "Connection": "close"})
            assert response.status_code == 200, response.text
            sent += 1
        seen.append(count(scrape(base), "/api/customers"))
    # A request is counted as its answer ends: a scrape may come just before.
    assert seen == sorted(seen), seen
    assert seen[-1] <= sent
    wait_for(lambda: count(scrape(base), "/api/customers") == sent, 5, f"{sent} counted")
    scrapes = [count(scrape(base), "/metrics") for _ in range(6)]
    assert scrapes == sorted(scrapes), scrapes


def test_pool_gauges_are_the_sum_of_the_live_workers_once(two_workers: Any) -> None:
    base, _ = two_workers
    for _ in range(4):
        samples = pools(scrape(base))
        assert [(p, s) for p, s, _ in samples] == [
            ("read", "idle"),
            ("read", "max"),
            ("read", "size"),
            ("sqlalchemy", "checked_out"),
            ("sqlalchemy", "idle"),
            ("sqlalchemy", "max"),
        ]
        assert {p: v for p, s, v in samples if s == "max"} == CAPACITY
        assert all(v >= 0 for _, _, v in samples)
        assert not any("pid" in labels for _, labels, _ in scrape(base))


def test_a_killed_worker_keeps_its_counts_and_loses_its_pools(two_workers: Any) -> None:
    base, folder = two_workers
    before = count(scrape(base), "/api/customers")
    for _ in range(6):
        httpx.get(f"{base}/api/customers", headers={**STAFF, "Connection": "close"})
    wait_for(lambda: count(scrape(base), "/api/customers") == before + 6, 5, "counted")
    victim, survivor = sorted(live_gauge_pids(folder))
    os.kill(victim, signal.SIGKILL)  # no shutdown: the supervisor replaces it
    wait_for(
        lambda: victim not in live_gauge_pids(folder) and len(live_gauge_pids(folder)) == 2,
        60 + SWEEP_SECONDS,
        "the killed worker swept and its replacement reporting",
    )
    assert survivor in live_gauge_pids(folder)
    samples = scrape(base)
    assert count(samples, "/api/customers") == before + 6
    assert {p: v for p, s, v in pools(samples) if s == "max"} == CAPACITY


def test_one_worker_serves_the_directory_it_is_given(database_url: str, tmp_path: Path) -> None:
    env: dict[str, str | None] = {
        SHARED_DIR: str(tmp_path),
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "2",
    }
    proc, base = start_service(database_url, env=env)
    try:
        for _ in range(3):
            assert httpx.get(f"{base}/api/customers", headers=STAFF).status_code == 200
        wait_for(lambda: count(scrape(base), "/api/customers") == 3, 5, "3 counted")
        capacity = {p: v for p, s, v in pools(scrape(base)) if s == "max"}
        assert capacity == {"sqlalchemy": CAPACITY["sqlalchemy"] / 2, "read": 3}
    finally:
        stop_service(proc)
    assert not live_gauge_pids(tmp_path)


def test_serve_shares_a_private_directory_only_between_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SHARED_DIR, raising=False)
    share_between_workers(1)()
    assert SHARED_DIR not in os.environ  # one process: in memory, as uvicorn run directly
    stop_sharing = share_between_workers(2)
    folder = Path(os.environ[SHARED_DIR])
    assert folder.is_dir() and not any(folder.iterdir())
    assert folder.stat().st_mode & 0o077 == 0  # the workers' own
    stop_sharing()
    assert not folder.exists() and SHARED_DIR not in os.environ


def test_the_private_directory_goes_with_the_service(database_url: str, tmp_path: Path) -> None:
    env: dict[str, str | None] = {"TMPDIR": str(tmp_path)}
    proc, base = start_service(database_url, env=env, args=("--workers", "2"))
    try:
        (folder,) = tmp_path.glob("jambo-metrics-*")
        wait_for(lambda: len(live_gauge_pids(folder)) == 2, 60, "both workers started")
        assert any(v for n, _, v in scrape(base) if n == POOL)
    finally:
        stop_service(proc)
    assert proc.returncode == 0
    assert not list(tmp_path.glob("jambo-metrics-*"))
