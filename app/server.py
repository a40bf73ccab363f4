"""uvicorn's HTTP protocol with the guards it lacks: a header size cap, header and body read
timeouts, and a connection cap that stays inside the process's file-descriptor limit.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but never a connection
that sends its header or body slowly, nor a fresh one that sends nothing, and httptools
accepts headers of any size. `jambo serve` runs uvicorn with `GuardedHttpTools` (or
`GuardedH11` where httptools is missing) whatever the way it is started (container too).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from app.config import Settings, get_settings
from app.logs import RateLimitedLog

log = logging.getLogger("jambo.server")
TICK_SECONDS = 1.0
# File descriptors kept for what is not a client connection: the database pool, the log,
# the mail connection, the listening socket, Python's own.
FD_RESERVE = 64


@dataclass(frozen=True)
class Limits:
    """What one worker allows a connection."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    max_connections: int


def raise_fd_limit() -> int:
    """Lift this process's soft file-descriptor limit to the hard one; return the soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # not allowed here: keep the soft limit and size the cap by it
    return soft


def connection_cap(settings: Settings, fd_limit: int) -> int:
    """MAX_CONNECTIONS, lowered so that client sockets can never exhaust the descriptors."""
    reserve = FD_RESERVE + settings.db_pool_size + settings.db_max_overflow
    return max(1, min(settings.max_connections, fd_limit - reserve))


@lru_cache
def limits() -> Limits:
    """This worker's limits, from the settings (every worker reads the same environment)."""
    settings = get_settings()
    return Limits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
        max_connections=connection_cap(settings, raise_fd_limit()),
    )


warn = RateLimitedLog(log)


class GuardMixin:
    """The guards, over either of uvicorn's HTTP/1.1 protocols (they share these names:
    transport, cycle, flow, connections, loop, on_response_complete, data_received)."""

    transport: asyncio.Transport
    cycle: Any
    flow: Any
    loop: asyncio.AbstractEventLoop
    connections: set[Any]

    def _guard_init(self) -> None:
        self.limits = limits()
        self._idle_cycle: Any = None  # the cycle current when we began waiting for headers
        self._waiting_since = self.loop.time()
        self._last_data = self._waiting_since
        self._head_bytes = 0
        self._tick: asyncio.TimerHandle | None = None

    def awaiting_headers(self) -> bool:
        """No request has started since the last answer (or since the connection opened)."""
        cycle = self.cycle
        return cycle is self._idle_cycle and (cycle is None or cycle.response_complete)

    def _reading_body(self) -> bool:
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete and cycle.more_body

    def _begin_waiting(self) -> None:
        self._idle_cycle = self.cycle
        self._waiting_since = self.loop.time()
        self._head_bytes = 0

    def _guard_connection_made(self) -> None:
        if len(self.connections) > self.limits.max_connections:
            # Full: drop whoever waits longest for a request (an idle keep-alive client
            # reconnects; a slow-loris one is what fills us), else refuse this one.
            waiting = [
                c
                for c in self.connections
                if c is not self and isinstance(c, GuardMixin) and c.awaiting_headers()
            ]
            victim = min(waiting, key=lambda c: c._waiting_since) if waiting else self
            warn.warn(
                "connection_limit",
                f"connection limit ({self.limits.max_connections}) reached: closed "
                + ("the longest-waiting idle connection" if victim is not self else "a new one"),
            )
            victim.transport.close()
        self._tick = self.loop.call_later(TICK_SECONDS, self._check)

    def _guard_data(self, data: bytes, feed: Any) -> None:
        self._last_data = self.loop.time()
        waiting = self.awaiting_headers()
        feed(data)
        if waiting and self.awaiting_headers() and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                warn.warn("header_too_large", "request header over the limit: 431, closed")
                self._refuse(b"431 Request Header Fields Too Large", b"Request header too large.")

    def _refuse(self, status: bytes, text: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(text)).encode() + b"\r\nconnection: close\r\n\r\n" + text
        )
        self.transport.close()

    def _check(self) -> None:
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self.awaiting_headers():
            if now - self._waiting_since > self.limits.header_timeout:
                # Idle keep-alive connections are closed sooner by uvicorn itself; this one
                # never finished a request header in time (slow or silent client).
                if self._head_bytes:
                    warn.warn("header_timeout", "request header not received in time: closed")
                    self._refuse(b"408 Request Timeout", b"Request header timeout.")
                else:
                    self.transport.close()
                return
        elif self._reading_body() and not self.flow.read_paused:
            if now - self._last_data > self.limits.body_timeout:
                warn.warn("body_timeout", "request body stalled: connection closed")
                self.transport.close()
                return
        self._tick = self.loop.call_later(TICK_SECONDS, self._check)

    def _guard_lost(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None


class _Guarded(GuardMixin):
    """The guards hooked into a uvicorn protocol (put before it: `super()` is the protocol)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard_init()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._guard_connection_made()

    def data_received(self, data: bytes) -> None:
        self._guard_data(data, super().data_received)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        self._begin_waiting()
        super().on_response_complete()  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard_lost()
        super().connection_lost(exc)  # type: ignore[misc]


class GuardedH11(_Guarded, H11Protocol):
    """uvicorn's h11 protocol with the guards."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is optional; h11 then
    HTTP_PROTOCOL = "app.server:GuardedH11"
else:

    class GuardedHttpTools(_Guarded, HttpToolsProtocol):
        """uvicorn's httptools protocol with the guards (httptools has no header cap)."""

    HTTP_PROTOCOL = "app.server:GuardedHttpTools"


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn.run options every `jambo serve` uses (the guards and their limits)."""
    return {
        "http": HTTP_PROTOCOL,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "backlog": 2048,
        # With several workers the supervisor restarts one that misses a 5 s ping; a worker
        # still importing on a busy machine (or without bytecode) was killed in a loop.
        "timeout_worker_healthcheck": 30,
    }


# Checks `jambo serve` makes before it starts: a free port, and the origins it serves.


def port_problem(host: str, port: int) -> str | None:
    """One line saying why `host:port` cannot be served, or None when it can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return f"Cannot serve on {host}: no such address (try --host 127.0.0.1)."
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"Port {port} on {host} is already in use: stop what is running there, or"
                    f" pick another port (make run PORT={port + 1}, jambo serve --port {port + 1})."
                )
            if exc.errno == errno.EACCES:
                return f"Not allowed to listen on port {port}: pick one above 1023."
            return f"Cannot listen on {host}:{port}: {exc.strerror}."
    return None


def origins_for(host: str, port: int) -> list[str]:
    """The browser origins of the served address (both loopback spellings for a local one)."""
    if host in ("127.0.0.1", "localhost", "0.0.0.0", "::", "::1"):
        return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    return [f"http://{host}:{port}"]
