"""Failover rehearsal (issue 24): keyed creates under load while the primary changes.

    .venv/bin/python -m bench.ha_rehearsal [--runs N] [--scenario switchover,stop,kill9,crash]
        [--replication sync|async] [--via multihost|haproxy] [--url-form repeated|lists]
        [--hold-wal SECONDS] [--ttl S --loop-wait S --retry-timeout S] [--keep-logs DIR]

Builds on loopback, under a temporary folder, a 3-node Patroni cluster (bench/ha_cluster.py:
one etcd member, PostgreSQL 15 from Debian's binaries, `synchronous_mode: true` for sync;
Patroni's own defaults ttl 30 s, loop_wait 10 s, retry_timeout 10 s unless given) and, for
`--via haproxy`, HAProxy from deploy/haproxy/haproxy.cfg; migrates the schema (`jambo migrate`
with the DATABASE_URL the service gets). Each run starts a fresh `jambo serve` (1 worker),
pointed at the cluster by a multi-host URL (`?host=h:p&host=h:p&host=h:p&target_session_attrs=
read-write` in node order, the leader last with `--leader-last`; `--url-form lists` for
`?host=h,h,h&port=p,p,p&…`) or at HAProxy. 8 writers create customers through
POST /api/customers for `--warmup` seconds (5), then the scenario strikes the leader while
they go on:

    switchover  `patronictl switchover --force` to a replica (the sync standby for sync)
    stop        SIGTERM to the leader's Patroni (a clean stop: PostgreSQL stopped, key released)
    kill9       kill -9 of the leader's postmaster (Patroni, still alive, restarts it)
    crash       kill -9 of the leader's Patroni, postmaster and backends at once (a node
                crash: nobody releases the leader key, the others wait for its ttl);
                with `--hold-wal S` the leader's WAL senders are stopped (SIGSTOP) S seconds
                before, so the replicas miss what is committed in that time

The load goes on until, `--tail` seconds (5) or more after the fault was dealt, the last
`--tail` seconds brought 2xx answers and no 5xx or missing answer (at most 120 s after the
fault); then no new create starts and each writer finishes the one it holds. The stopped or
crashed node is started again and the next run waits for a healthy cluster (a leader
streaming to both replicas, a sync standby for sync). A run takes about 30 s here (19 runs in
14.5 minutes); at `ad4b0ed` 50–75 s, most of it waiting for a key held at 409 to lapse (below),
and 4 minutes when the service never recovered. Building the cluster takes 15–30 s.

Each run writes as an identity of its own (`rehearsal-<run>`: a run makes 3,000–4,500 keys, a
caller holds at most 10,000). Each writer sends one create at a time, each with a fresh
Idempotency-Key `<run>-<writer>-<n>`
and a body that names the key (e-mail `<key>@rehearsal.example.org`, middle name `<key>`).
A failed attempt (5xx, no answer, time-out after 40 s, 409 "still being processed") is sent
again with the same key and body after the Retry-After the answer gives (at most
`--max-backoff` seconds, default 1; 0.2 s after a failure without one), until a 2xx or a 4xx
other than that 409. Once the load has stopped, a key is given up after 90 s: longer than a
claim left without an answer lived at `ad4b0ed` (60 s), so that such a claim is seen to lapse
and its retry to run again (since issue 24 a claim is the running transaction's own lock and
goes with it). How each number is computed, per run, from the writers' records and the new
primary (the leader Patroni reports after the run, read directly with asyncpg):

    acknowledged    keys answered 2xx (a replay of an earlier 201 included): a writer stops
                    at the first, so a key counts once.
    lost            acknowledged keys whose answered ULID is not a row of `customers` on the
                    new primary.
    duplicate rows  creates that ran a second time for one key: rows beyond the first with
                    the key's e-mail (none can exist, the e-mail is unique) plus keys with a
                    retry answered 409 "A customer with this email already exists" — the
                    e-mail is the key's own, so that answer means an earlier attempt of the
                    key had created the customer and the retry ran the create again, stopped
                    only by the e-mail's uniqueness (without a unique field, a second row).
    500s            attempts answered 500 (SPEC: a failover costs 503s, never a 500).
    other 5xx       attempts answered 501–599 (503 + Retry-After is the expected answer).
    no answer       attempts without an HTTP answer (connection refused or cut, time-out).
    unreplayable    acknowledged keys without a stored answer on the new primary (their row
    201s            of `idempotency_keys` missing or without a status): a retry of them would
                    not be replayed (SPEC: a 201 always has a replayable answer).
    unresolved      keys still without a final answer when given up.
    write outage    the longest gap between two successive 2xx answers (any writer) while the
                    load ran, a gap still open when it stopped counting up to then: what a
                    client retrying as above waits, its back-off included.
    keys held at    keys answered 409 "still being processed" at least once: a claim left
    409 (longest)   on the key (by an attempt that failed, or whose answer was lost) holds
                    every retry until it lapses; in brackets the longest time from a key's
                    first such 409 to its final answer.

On stderr, after each run: the exception classes of the service's error log lines, and up
to three keys behind each bad number with their attempts (for lost ones also when their
201s came) (`+1.2s→503 ×4`: seconds from the
start of the fault, repeated answers folded). `--keep-logs DIR` keeps every log (etcd,
Patroni and PostgreSQL per node, HAProxy, the service per run).

Writers and the fault run in this process on one event loop; the fault's blocking steps run in
a thread so the writers keep going. Every process started (etcd, Patroni and its PostgreSQL,
HAProxy, the service) is stopped and the temporary folder removed on exit, Ctrl-C and
SIGTERM included. Prints a table row per run, then one per scenario and `summary: {json}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.auth.tokens import STAFF_SCOPES, mint_token
from app.config import Settings
from bench.ha_cluster import Cluster, Node, Timing, free_port, missing_tools
from bench.ha_load import Outcome, Writers, count, logged_errors

HERE = Path(__file__).resolve().parents[1]
SECRET = "rehearsal-secret-" + "h" * 40
WRITERS = 8
SETTINGS = Settings(jwt_secret=SECRET, _env_file=None)  # type: ignore[call-arg]
# A key is given up this long after the load stops: past the 60 s a claim left without an
# answer lived before issue 24, so that such a claim is seen to lapse and its retry to run.
DRAIN_S = 90.0
SCENARIOS = {
    "switchover": "switchover",
    "stop": "Patroni stop",
    "kill9": "kill -9 of the primary",
    "crash": "node crash",
}


# --- the service -----------------------------------------------------------------------------


class Service:
    """`jambo serve --no-migrate` (1 worker) on a free port, logging to `log`."""

    def __init__(self, url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        jambo = Path(sys.executable).with_name("jambo")
        command = [str(jambo)] if jambo.exists() else [sys.executable, "-m", "app.cli"]
        command += ["serve", "--no-migrate", "--workers", "1", "--port", str(self.port)]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=HERE,
                env=service_env(url),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait(log)
        except BaseException:
            self.close()
            raise

    def _wait(self, log: Path) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    # The last words of its log (after rich's traceback box, when there is one).
                    last = log.read_text(errors="replace").rsplit("╰", 1)[-1].split("\n", 1)[-1]
                    raise RuntimeError(
                        f"jambo serve did not start: {' '.join(last.split())}"
                    ) from None
                time.sleep(0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def service_env(url: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ} | {
        "DATABASE_URL": url,
        "JWT_SECRET": SECRET,
        "ALLOWED_HOSTS": "*",
        "LOG_LEVEL": "WARNING",
        "SMTP_HOST": "",
    }


def database_url(cluster: Cluster, args: argparse.Namespace) -> str:
    """What the service is given: the three nodes (in node order, or with the leader last
    for `--leader-last`), or HAProxy's one address."""
    if args.via == "haproxy":
        return f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.haproxy_port}/jambo"
    nodes = list(cluster.nodes)
    if args.leader_last:
        leader = cluster.wait_leader(60)
        nodes = [n for n in nodes if n is not leader] + [leader]
    ports = [n.pg_port for n in nodes]
    if args.url_form == "lists":
        hosts = "host=" + ",".join("127.0.0.1" for _ in ports)
        hosts += "&port=" + ",".join(str(p) for p in ports)
    else:
        hosts = "&".join(f"host=127.0.0.1:{p}" for p in ports)
    return f"postgresql+asyncpg://postgres@/jambo?{hosts}&target_session_attrs=read-write"


async def create_database(node: Node) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=node.pg_port, user="postgres")
    try:
        await conn.execute("CREATE DATABASE jambo")
    finally:
        await conn.close()


# --- a run -----------------------------------------------------------------------------------


def strike(cluster: Cluster, scenario: str, hold: float) -> Node:
    """Perform the scenario on the current leader (blocking); returns that node."""
    leader = cluster.leader()
    if leader is None:
        raise RuntimeError("no leader to strike")
    if scenario == "switchover":
        roles = {m["name"]: m.get("role") for m in cluster.members()}
        wanted = "sync_standby" if cluster.sync else "replica"
        candidate = next(n for n in cluster.nodes if roles.get(n.name) == wanted)
        done = cluster.switchover(leader, candidate)
        if done.returncode != 0:
            raise RuntimeError(f"switchover failed: {done.stdout}{done.stderr}")
    elif scenario == "stop":
        leader.stop()
    elif scenario == "kill9":
        leader.kill_postmaster()
    else:
        senders = leader.walsenders() if hold else []
        for pid in senders:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(hold)
        leader.crash()
    return leader


async def one_run(cluster: Cluster, scenario: str, args: argparse.Namespace) -> Outcome:
    """Load, fault, load until writes are back, count; then make the cluster whole again."""
    tag = f"r{secrets.token_hex(4)}"
    url = await asyncio.to_thread(database_url, cluster, args)
    log = cluster.root / f"serve-{tag}.log"
    service = Service(url, log)
    try:
        timeout = httpx.Timeout(40.0)
        limits = httpx.Limits(max_connections=WRITERS * 2)
        async with httpx.AsyncClient(base_url=service.base, timeout=timeout, limits=limits) as c:
            token = mint_token(SETTINGS, f"rehearsal-{tag}", "staff", STAFF_SCOPES, 3600)
            load = Writers(c, tag, token, args.max_backoff, DRAIN_S)
            writers = [asyncio.create_task(load.writer(n)) for n in range(WRITERS)]
            await asyncio.sleep(args.warmup)
            fault = load.clock()
            struck = await asyncio.to_thread(strike, cluster, scenario, args.hold_wal)
            struck_at = load.clock()
            while not load.quiet(struck_at, args.tail) and load.clock() < struck_at + 120:
                await asyncio.sleep(0.2)
            ended = load.stop()
            await asyncio.gather(*writers)
    finally:
        service.close()
    leader = await asyncio.to_thread(cluster.wait_leader, 180)
    outcome = await count(load, leader.pg_port, leader.name, ended, fault)
    errors = dict(logged_errors(log))
    note(f"  {tag}: {scenario} on {struck.name}, leader now {leader.name}; errors logged: {errors}")
    for kind, keys in outcome.examples.items():
        note(f"    {kind}: " + "; ".join(keys))
    if scenario in ("stop", "crash"):
        struck.start()
    await asyncio.to_thread(cluster.wait_healthy, 300)
    return outcome


# --- reporting -------------------------------------------------------------------------------

COLUMNS = (
    "acknowledged",
    "lost",
    "duplicate rows",
    "500s",
    "write outage",
    "other 5xx",
    "no answer",
    "unreplayable 201s",
    "unresolved",
    "keys held at 409 (longest)",
)


def row(label: str, outcomes: list[Outcome]) -> str:
    def total(name: str) -> str:
        return f"{sum(getattr(o, name) for o in outcomes):,}"

    outages = sorted(o.outage_s for o in outcomes)
    span = (
        f"{outages[0]:.1f} s"
        if outages[0] == outages[-1]
        else (f"{outages[0]:.1f}–{outages[-1]:.1f} s")
    )
    cells = [total("acknowledged"), total("lost"), total("duplicates"), total("http_500"), span]
    cells += [total("other_5xx"), total("no_answer"), total("unreplayable"), total("unresolved")]
    cells.append(f"{total('held')} ({max(o.held_s for o in outcomes):.0f} s)")
    return f"| {label} | " + " | ".join(cells) + " |"


def totals(outcomes: list[Outcome]) -> dict[str, Any]:
    """The counts summed over runs, and each run's write outage."""
    names = ["acknowledged", "lost", "duplicates", "http_500", "other_5xx", "no_answer"]
    names += ["unreplayable", "unresolved", "held", "other_4xx", "rows"]
    out: dict[str, Any] = {name: sum(getattr(o, name) for o in outcomes) for name in names}
    out["held_s"] = max(o.held_s for o in outcomes)
    return out | {"runs": len(outcomes), "outage_s": [o.outage_s for o in outcomes]}


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def label(args: argparse.Namespace, scenario: str) -> str:
    name = SCENARIOS[scenario]
    if scenario == "crash" and args.hold_wal:
        name += f" with WAL held back {args.hold_wal:g} s"
    via = "HAProxy"
    if args.via == "multihost":
        via = "multi-host" if args.url_form == "repeated" else "multi-host, host/port lists"
        via += ", leader listed last" if args.leader_last else ""
    if (args.ttl, args.loop_wait, args.retry_timeout) != (30, 10, 10):
        via += f", ttl {args.ttl} loop_wait {args.loop_wait} retry_timeout {args.retry_timeout}"
    return f"{args.replication}, {name}, {via}"


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


# --- main ------------------------------------------------------------------------------------


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Failover rehearsal: keyed creates while a Patroni cluster's primary changes."
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (3)")
    parser.add_argument("--scenario", default="all", help="comma-separated, or all (default)")
    parser.add_argument("--replication", choices=("sync", "async"), default="sync")
    parser.add_argument("--via", choices=("multihost", "haproxy"), default="multihost")
    parser.add_argument(
        "--url-form",
        choices=("repeated", "lists"),
        default="repeated",
        help="multi-host URL: host=h:p repeated (default), or host=h,h&port=p,p",
    )
    parser.add_argument(
        "--leader-last",
        action="store_true",
        help="list the leader last in the multi-host URL when each run's service starts",
    )
    parser.add_argument(
        "--hold-wal",
        type=float,
        default=0.0,
        help="crash only: stop the leader's WAL senders this long before",
    )
    parser.add_argument("--ttl", type=int, default=30, help="Patroni ttl (default 30)")
    parser.add_argument("--loop-wait", type=int, default=10, help="Patroni loop_wait (10)")
    parser.add_argument("--retry-timeout", type=int, default=10, help="Patroni retry_timeout (10)")
    parser.add_argument("--warmup", type=float, default=5.0, help="load before the fault (5 s)")
    parser.add_argument("--tail", type=float, default=5.0, help="load after writes resume (5 s)")
    parser.add_argument(
        "--max-backoff",
        type=float,
        default=1.0,
        help="longest wait between a key's attempts, Retry-After included (1 s)",
    )
    parser.add_argument("--keep-logs", type=Path, help="copy every log into this folder")
    args = parser.parse_args()
    chosen = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown}; choose from {', '.join(SCENARIOS)}")
    if args.hold_wal and chosen != ["crash"]:
        parser.error("--hold-wal goes with --scenario crash only")
    args.scenarios = chosen
    return args


def main() -> None:
    args = parse()
    lacking = missing_tools()
    if lacking:
        sys.exit(
            f"missing: {', '.join(lacking)} (Debian: patroni etcd-server haproxy postgresql-15)"
        )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # cleaned up like Ctrl-C
    timing = Timing(args.ttl, args.loop_wait, args.retry_timeout)
    cluster = Cluster(args.replication == "sync", timing)
    results: dict[str, list[Outcome]] = {}
    began = time.monotonic()
    try:
        note(
            f"cluster under {cluster.root} (ttl {timing.ttl}, loop_wait {timing.loop_wait}, "
            f"retry_timeout {timing.retry_timeout}, {args.replication})"
        )
        cluster.start()
        leader = cluster.leader()
        assert leader is not None
        asyncio.run(create_database(leader))
        if args.via == "haproxy":
            cluster.start_haproxy()
        url = database_url(cluster, args)
        migrate(url)
        note(f"DATABASE_URL={url}; ready after {time.monotonic() - began:.0f} s")
        print(f"\n| replication, scenario (runs) | {' | '.join(COLUMNS)} |", flush=True)
        print("|---|" + "---|" * len(COLUMNS), flush=True)
        for scenario in args.scenarios:
            for run in range(args.runs):
                outcome = asyncio.run(one_run(cluster, scenario, args))
                results.setdefault(scenario, []).append(outcome)
                print(row(f"{label(args, scenario)} (run {run + 1})", [outcome]), flush=True)
        print()
        for scenario, outcomes in results.items():
            print(row(f"{label(args, scenario)} ({len(outcomes)})", outcomes))
        every = [o for outcomes in results.values() for o in outcomes]
        summary: dict[str, Any] = {
            "commit": commit(),
            "replication": args.replication,
            "via": args.via,
            "url_form": args.url_form if args.via == "multihost" else None,
            "ttl": timing.ttl,
            "loop_wait": timing.loop_wait,
            "retry_timeout": timing.retry_timeout,
            "hold_wal_s": args.hold_wal,
            "runs": len(every),
            "seconds": round(time.monotonic() - began),
        }
        summary |= totals(every)
        summary["scenarios"] = {s: totals(outcomes) for s, outcomes in results.items()}
        print(f"\nsummary: {json.dumps(summary)}", flush=True)
    finally:
        if args.keep_logs:
            keep_logs(cluster.root, args.keep_logs)
        cluster.close()


def migrate(url: str) -> None:
    jambo = Path(sys.executable).with_name("jambo")
    command = [str(jambo)] if jambo.exists() else [sys.executable, "-m", "app.cli"]
    done = subprocess.run(
        [*command, "migrate"],
        cwd=HERE,
        env=service_env(url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"jambo migrate failed: {done.stderr[-2000:]}")


def keep_logs(root: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for log in root.rglob("*.log"):
        if re.fullmatch(r"[\w.-]+", log.name):
            shutil.copy(log, into / f"{log.parent.name}-{log.name}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # everything is cleaned up by then
        sys.exit(130)
