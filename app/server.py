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

import h11
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
    body_deadline: float
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
        body_deadline=settings.body_deadline_seconds,
        max_connections=connection_cap(settings, raise_fd_limit()),
    )


warn = RateLimitedLog(log)

# An answer given before its request body was read (401, 413, a shed 503…): a rest of up to
# this many declared bytes is read and dropped, and the connection serves the next request;
# a longer (or chunked) rest is not waited for: the connection is half-closed after the
# answer and what still arrives is discarded for LINGER_SECONDS (closing at once with unread
# bytes would make the kernel reset the connection, and the client might lose the answer).
DRAIN_BYTES = 64 * 1024
LINGER_SECONDS = 2.0


class GuardMixin:
    """The guards, over either of uvicorn's HTTP/1.1 protocols (they share these names:
    transport, cycle, flow, connections, loop, on_response_complete, data_received).

    A connection is, at any time, reading a request head (`_in_body()` false: its bytes count
    against the header cap and the header timeout) or a request body (`_in_body()` true: the
    body stall timeout and the body's total deadline apply). Bytes of a body the answer came
    before are never counted as the next request's head.
    """

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
        self._head_exact = 0
        self._body_since = 0.0
        self._heads_done = 0  # request heads parsed on this connection
        self._lingering = False
        self._tick: asyncio.TimerHandle | None = None

    def _in_body(self) -> bool:
        """Whether the parser is inside a request body (its head is complete)."""
        raise NotImplementedError

    def _body_rest(self) -> int | None:
        """Declared body bytes not received yet (None: unknown, e.g. chunked)."""
        return None

    def awaiting_headers(self) -> bool:
        """No request is being read or answered (a keep-alive connection between requests)."""
        cycle = self.cycle
        idle = cycle is self._idle_cycle and (cycle is None or cycle.response_complete)
        return idle and not self._in_body()

    def _reading_body(self) -> bool:
        return self._in_body() and not self._lingering

    def _begin_waiting(self) -> None:
        self._idle_cycle = self.cycle
        self._waiting_since = self.loop.time()
        self._head_bytes = 0

    def _body_begins(self) -> None:
        self._heads_done += 1
        self._body_since = self.loop.time()

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
        if self._lingering:
            return  # the rest of a body we answered before reading: dropped unread
        in_head = not self._in_body()
        heads = self._heads_done
        feed(data)
        # Every byte of a chunk that leaves the parser still inside the head it began in is
        # head; a chunk in which a head ended (and perhaps a whole body after it) is not
        # counted here: that head was measured exactly as the parser handed its lines over.
        still_in_head = in_head and heads == self._heads_done and not self._in_body()
        if still_in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            self._check_head()

    def _check_head(self) -> bool:
        """Past the header cap answer 431 and close (True). Both measures of the head are
        lower bounds (chunks wholly inside it; the lines the parser handed over), so neither
        ever counts a byte that is not head."""
        if max(self._head_bytes, self._head_exact) <= self.limits.max_header_bytes:
            return False
        if not self.transport.is_closing():
            warn.warn("header_too_large", "request header over the limit: 431, closed")
            self._refuse(b"431 Request Header Fields Too Large", b"Request header too large.")
        return True

    def _refuse(self, status: bytes, text: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"x-content-type-options: nosniff\r\n"
            b"content-length: " + str(len(text)).encode() + b"\r\nconnection: close\r\n\r\n" + text
        )
        self.transport.close()

    def _answered_early(self) -> None:
        """The answer went out before its request body was read whole: drain a short rest,
        else half-close and drop what still comes (see DRAIN_BYTES)."""
        rest = self._body_rest()
        if rest is not None and rest <= DRAIN_BYTES:
            return  # the parser reads it (uvicorn drops a body answered before it arrived)
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

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
            stalled = now - self._last_data > self.limits.body_timeout
            if stalled or now - self._body_since > self.limits.body_deadline:
                warn.warn("body_timeout", "request body not received in time: closed")
                cycle = self.cycle
                if cycle is not None and not cycle.response_started:
                    self._refuse(b"408 Request Timeout", b"Request body timeout.")
                else:
                    self.transport.close()
                return
        self._tick = self.loop.call_later(TICK_SECONDS, self._check)

    def _guard_response_complete(self) -> None:
        if self._in_body() and not self.transport.is_closing():
            self._answered_early()
        self._begin_waiting()

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
        self._guard_response_complete()
        super().on_response_complete()  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard_lost()
        super().connection_lost(exc)  # type: ignore[misc]


class GuardedH11(_Guarded, H11Protocol):
    """uvicorn's h11 protocol with the guards (h11 caps the head itself:
    h11_max_incomplete_event_size)."""

    def _in_body(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY  # type: ignore[no-any-return]

    def handle_events(self) -> None:
        was_idle = self.conn.their_state is h11.IDLE
        super().handle_events()
        if was_idle and self.conn.their_state is not h11.IDLE:
            self._body_begins()  # a head arrived (its body may have come whole with it)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is optional; h11 then
    HTTP_PROTOCOL = "app.server:GuardedH11"
else:

    class GuardedHttpTools(_Guarded, HttpToolsProtocol):
        """uvicorn's httptools protocol with the guards. httptools has no header cap of its
        own: the head is measured as the parser hands over its URL and header lines, so a
        head that arrives in one write is capped too."""

        _body = False
        _body_declared: int | None = None
        _body_seen = 0

        def _in_body(self) -> bool:
            return self._body

        def _body_rest(self) -> int | None:
            if self._body_declared is None:
                return None
            return max(0, self._body_declared - self._body_seen)

        def on_message_begin(self) -> None:
            self._head_exact = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._head_exact += len(url)
            if not self._check_head():
                super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_exact += len(name) + len(value) + 4  # ": " and CRLF
            if not self._check_head():
                super().on_header(name, value)

        def on_headers_complete(self) -> None:
            if self.transport.is_closing():
                return  # refused (431): nothing of this request runs
            super().on_headers_complete()
            self._body = True
            self._body_seen = 0
            self._body_declared = None
            for key, value in self.headers:
                if key == b"content-length" and value.isdigit():
                    self._body_declared = int(value)
            self._body_begins()

        def on_body(self, body: bytes) -> None:
            self._body_seen += len(body)
            if self._body:  # not the body of a request refused at its head
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._body:
                self._body = False
                super().on_message_complete()

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
