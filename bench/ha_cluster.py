"""A throw-away Patroni cluster on loopback, for `bench/ha_rehearsal.py`.

One etcd member, three Patroni nodes running PostgreSQL 15 from Debian's binaries, and on
demand HAProxy configured from `deploy/haproxy/haproxy.cfg` (the sample the docs show, with
this machine's addresses put in), so the proxy that is measured is the one documented.

Everything lives under one temporary directory and runs as `postgres` when started as root
(PostgreSQL refuses root). Each daemon gets its own session, so a Ctrl-C in the terminal
reaches only the rehearsal, which then stops them in order. Patroni starts each postmaster
in a session of its own and lets it go (it is nobody's child afterwards), and every backend
is a session of its own too; so a postmaster is found through its `postmaster.pid` (and
checked to run on this cluster's data directory) and its backends by their parent PID.
`close()` ends Patroni, then any postmaster left over and its backends, frees the shared
memory a killed postmaster leaves, stops HAProxy and etcd, and removes the directory.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import stop_service
from tests.throwaway_pg import children

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HERE = Path(__file__).resolve().parents[1]
HAPROXY_SAMPLE = HERE / "deploy/haproxy/haproxy.cfg"
SCOPE = "jambo-ha"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary(name: str) -> str | None:
    """A system binary on PATH or where Debian keeps daemons."""
    found = shutil.which(name)
    if found:
        return found
    for place in ("/usr/sbin", "/usr/bin", str(PG_BIN)):
        if os.access(Path(place) / name, os.X_OK):
            return str(Path(place) / name)
    return None


def missing_tools() -> list[str]:
    """What this machine lacks to build the cluster (empty when nothing)."""
    needed = ["etcd", "patroni", "patronictl", "haproxy"]
    lacking = [name for name in needed if binary(name) is None]
    lacking += [f"{PG_BIN}/{t}" for t in ("initdb", "postgres", "pg_basebackup", "pg_rewind")]
    return [t for t in lacking if "/" not in t or not os.access(t, os.X_OK)]


def get_json(url: str, timeout: float = 2) -> Any:
    """GET a JSON document (Patroni's REST API, etcd's health)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


@dataclass(frozen=True)
class Timing:
    """The Patroni settings that bound failover time (Patroni's defaults: 30, 10, 10).

    ttl: how long the leader key lives without a renewal; a crashed leader is noticed no
    sooner. loop_wait: seconds between two runs of each node's loop. retry_timeout: how long
    DCS and PostgreSQL operations are retried before the leader demotes itself. Patroni asks
    for loop_wait + 2 × retry_timeout ≤ ttl.
    """

    ttl: int = 30
    loop_wait: int = 10
    retry_timeout: int = 10


class Node:
    """One Patroni member: its ports, folder, configuration and process."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.pg_port, self.rest_port = free_port(), free_port()
        self.folder = cluster.root / name
        self.data = self.folder / "data"
        self.config = self.folder / "patroni.yml"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def write_config(self) -> None:
        cluster = self.cluster
        cluster.own(self.folder)
        trust = ["local all all trust", "host all all 127.0.0.1/32 trust"]
        trust.append("host replication all 127.0.0.1/32 trust")
        config = {
            "scope": SCOPE,
            "name": self.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{self.rest_port}",
                "connect_address": f"127.0.0.1:{self.rest_port}",
            },
            "etcd3": {"hosts": f"127.0.0.1:{cluster.etcd_port}"},
            "bootstrap": {
                "dcs": {
                    "ttl": cluster.timing.ttl,
                    "loop_wait": cluster.timing.loop_wait,
                    "retry_timeout": cluster.timing.retry_timeout,
                    # A replica further behind than this is not promoted (Patroni's default).
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": cluster.sync,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_log_hints": "on",  # pg_rewind brings a crashed leader back
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "max_connections": 100,
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, {"auth": "trust"}],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.pg_port}",
                "connect_address": f"127.0.0.1:{self.pg_port}",
                "data_dir": str(self.data),
                "bin_dir": str(PG_BIN),
                "pgpass": str(self.folder / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres"},
                    "replication": {"username": "postgres"},
                    "rewind": {"username": "postgres"},
                },
                "parameters": {"unix_socket_directories": str(self.folder)},
                "pg_hba": trust,
                "remove_data_directory_on_rewind_failure": True,
            },
        }
        # YAML is a superset of JSON: Patroni reads this as its YAML configuration.
        self.config.write_text(json.dumps(config, indent=1))

    def start(self) -> None:
        """Start this node's Patroni (it initialises, clones or rejoins as it sees fit)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        log = open(self.folder / "patroni.log", "ab")  # noqa: SIM115 (the child keeps it)
        patroni = binary("patroni")
        assert patroni
        self.proc = self.cluster.spawn([patroni, str(self.config)], log)
        log.close()

    def postmaster(self) -> int | None:
        """The PID of this node's running postmaster, if there is one."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if not _alive(pid) or str(self.data).encode() not in _cmdline(pid).split(b"\0"):
            return None  # a stale file, or the PID now belongs to someone else
        return pid

    def processes(self) -> list[int]:
        """The running postmaster and its children (each backend is a session of its own,
        so they are found by parent, not by process group)."""
        pid = self.postmaster()
        return [] if pid is None else [pid, *children(pid)]

    def walsenders(self) -> list[int]:
        """PIDs of the postmaster's WAL senders (what streams to the replicas)."""
        return [p for p in self.processes()[1:] if b"walsender" in _cmdline(p)]

    def kill_postmaster(self) -> None:
        """kill -9 the postmaster alone (its backends find out and exit)."""
        pid = self.postmaster()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def crash(self) -> None:
        """The node dies at once: Patroni, the postmaster and every backend get SIGKILL."""
        doomed = self.processes()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        for pid in doomed:
            _kill(pid)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout: float = 60) -> None:
        """Patroni's clean shutdown (SIGTERM): PostgreSQL stopped, the leader key released."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        """Stop Patroni, then anything of this node still running, and free the shared
        memory a killed postmaster leaves behind."""
        self.stop(timeout=30)
        for pid in self.processes():
            _kill(pid)
        try:
            key, shmid = (self.data / "postmaster.pid").read_text().splitlines()[6].split()[:2]
        except (OSError, IndexError, ValueError):
            return
        for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]:
            fields = line.split()  # key shmid perms size cpid lpid nattch …
            if fields[:2] == [key, shmid] and fields[6] == "0":
                subprocess.run(["ipcrm", "-m", shmid], capture_output=True)


class Cluster:
    """etcd, three Patroni nodes and optionally HAProxy, all under one temporary folder."""

    def __init__(self, sync: bool, timing: Timing, nodes: int = 3) -> None:
        self.sync = sync
        self.timing = timing
        self.root = Path(tempfile.mkdtemp(prefix="jambo-ha-"))
        self.root.chmod(0o755)
        self.user = self._unprivileged()
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        self.nodes = [Node(self, f"node{i + 1}") for i in range(nodes)]
        self.haproxy_port: int | None = None
        self._daemons: list[subprocess.Popen[bytes]] = []

    @staticmethod
    def _unprivileged() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        return pwd.getpwnam("postgres")

    def own(self, path: Path) -> None:
        """Create `path` for the user the daemons run as."""
        path.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def spawn(self, command: list[str], log: Any) -> subprocess.Popen[bytes]:
        """A daemon in a session of its own, as the unprivileged user, logging to `log`."""
        extra: dict[str, Any] = {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        if self.user is not None:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
            env["HOME"] = str(self.root)
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.root,
            env=env,
            **extra,
        )
        self._daemons.append(proc)
        return proc

    # --- start ---------------------------------------------------------------------------

    def start(self) -> None:
        """etcd, then the first node (it initialises the cluster), then the replicas."""
        self._start_etcd()
        for node in self.nodes:
            node.write_config()
        self.nodes[0].start()
        self.wait_leader(120)
        for node in self.nodes[1:]:
            node.start()
        self.wait_healthy(240)

    def _start_etcd(self) -> None:
        folder = self.root / "etcd"
        self.own(folder)
        etcd = binary("etcd")
        assert etcd
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        command = [etcd, "--name", "etcd1", "--data-dir", str(folder / "data")]
        command += ["--listen-client-urls", client, "--advertise-client-urls", client]
        command += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
        command += ["--initial-cluster", f"etcd1={peer}", "--initial-cluster-state", "new"]
        command += ["--logger", "zap", "--log-level", "warn"]
        with open(folder / "etcd.log", "ab") as log:
            self.spawn(command, log)
        deadline = time.monotonic() + 30
        while True:
            try:
                if get_json(f"{client}/health").get("health") == "true":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not start; see {folder / 'etcd.log'}")
            time.sleep(0.2)

    def start_haproxy(self) -> int:
        """HAProxy from the documented sample, its servers this cluster's nodes; its port."""
        sample = HAPROXY_SAMPLE.read_text()
        self.haproxy_port = free_port()
        text = re.sub(r"(?m)^(\s*bind\s+)\S+", rf"\g<1>127.0.0.1:{self.haproxy_port}", sample)
        servers = iter(self.nodes)

        def server(match: re.Match[str]) -> str:
            node = next(servers)
            return (
                f"{match.group(1)}{node.name} 127.0.0.1:{node.pg_port}"
                f"{match.group(2)}port {node.rest_port}"
            )

        text = re.sub(r"(?m)^(\s*server\s+)\S+\s+\S+(.*?\bcheck\s+)port\s+\d+", server, text)
        config = self.root / "haproxy.cfg"
        config.write_text(text)
        haproxy = binary("haproxy")
        assert haproxy
        checked = subprocess.run([haproxy, "-c", "-q", "-f", str(config)], capture_output=True)
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy.cfg does not check: {checked.stderr.decode()[-500:]}")
        with open(self.root / "haproxy.log", "ab") as log:
            self.spawn([haproxy, "-db", "-f", str(config)], log)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.haproxy_port), timeout=1):
                    return self.haproxy_port
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("HAProxy did not listen") from None
                time.sleep(0.2)

    # --- state ---------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        """Patroni's view of the cluster (`GET /cluster` from any node that answers)."""
        for node in self.nodes:
            try:
                return list(get_json(f"{node.rest}/cluster").get("members", []))
            except (OSError, ValueError):
                continue
        return []

    def leader(self) -> Node | None:
        """The node Patroni reports as the running leader, if any."""
        for member in self.members():
            if _is_leader(member):
                return self.node(member["name"])
        return None

    def wait_leader(self, timeout: float) -> Node:
        """The running leader, waiting up to `timeout` seconds for one."""
        self.wait(lambda members: any(_is_leader(m) for m in members), timeout, "leader")
        leader = self.leader()
        assert leader is not None
        return leader

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def healthy(self, members: list[dict[str, Any]]) -> bool:
        """A running leader streaming to every other node, a sync standby if asked."""
        if len(members) != len(self.nodes) or sum(_is_leader(m) for m in members) != 1:
            return False
        leader = self.node(next(m["name"] for m in members if _is_leader(m)))
        try:
            streams = get_json(f"{leader.rest}/patroni").get("replication", [])
        except (OSError, ValueError):
            return False
        if sum(s.get("state") == "streaming" for s in streams) != len(self.nodes) - 1:
            return False
        replicas = [m for m in members if not _is_leader(m)]
        if any(m.get("lag", 0) not in (0, "0") for m in replicas):
            return False
        return not self.sync or any(m.get("role") == "sync_standby" for m in replicas)

    def wait_healthy(self, timeout: float) -> None:
        self.wait(self.healthy, timeout, "a healthy cluster")

    def wait(self, test: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not test(members := self.members()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} after {timeout:.0f} s: {members}")
            time.sleep(0.5)

    def switchover(self, leader: Node, candidate: Node) -> subprocess.CompletedProcess[str]:
        """`patronictl switchover` from the leader to the candidate, without asking."""
        patronictl = binary("patronictl")
        assert patronictl
        command = [patronictl, "-c", str(leader.config), "switchover", SCOPE]
        command += ["--leader", leader.name, "--candidate", candidate.name, "--force"]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    # --- end -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process this cluster started and remove its folder."""
        try:
            for node in self.nodes:
                node.close()
        finally:
            for proc in reversed(self._daemons):  # HAProxy, then etcd
                stop_service(proc)
            shutil.rmtree(self.root, ignore_errors=True)


def _is_leader(member: dict[str, Any]) -> bool:
    return member.get("role") in ("leader", "master") and member.get("state") == "running"
