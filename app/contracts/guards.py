"""The guards against hostile clients, as the edge layer (app/middleware.py) applies them to
every request: allowed hosts, admission control (shed load at once instead of queueing) and
security headers on every HTML page. Each answers in the contract's format of the path."""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from app.contracts.http import JSON
from app.contracts.routing import Problem, Renderer
from app.errors import PayloadTooLarge
from app.logs import RateLimitedLog
from app.metrics import SHED

log = logging.getLogger("jambo.hardening")

# Probes call these by IP and must answer even when the service sheds load.
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


warn = RateLimitedLog(log)


def _path(scope: Scope) -> str:
    """The path without ROOT_PATH (what the routes see)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] or "/" if root and path.startswith(root) else path


def host_name(value: str) -> str:
    """The host of a Host header without its port, lower-case (`[::1]:8000` → `[::1]`)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    return value.partition(":")[0]


async def _answer(
    scope: Scope,
    receive: Receive,
    send: Send,
    render_for: Callable[[str], Renderer | None],
    problem: Problem,
    safe_host: str | None = None,
) -> None:
    """`problem` in the contract's format of the path (plain JSON elsewhere)."""
    if safe_host is not None:
        # Whatever the renderer builds from the request (links on the browsable page) must
        # not carry the host we are refusing.
        headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
        scope = {**scope, "headers": [*headers, (b"host", safe_host.encode("latin-1"))]}
    render = render_for(_path(scope))
    response: Response
    if render is None:
        response = JSON({"detail": problem.message}, status_code=problem.status)
    else:
        response = render(Request(scope, receive), problem)
    response.headers.update(problem.headers)
    await response(scope, receive, send)


class HostCheck:
    """400 for a Host (after trusted X-Forwarded-Host) not in ALLOWED_HOSTS; probes exempt.

    Links, Location and Starlette's redirects are built from the Host: once it is checked,
    none of them can point anywhere else.
    """

    def __init__(self, allowed: list[str], render_for: Callable[[str], Renderer | None]) -> None:
        self.any = "*" in allowed
        self.allowed = frozenset(host_name(h) for h in allowed if h != "*")
        self.fallback = next(iter(sorted(self.allowed)), "localhost")
        self.render_for = render_for

    def refuses(self, scope: Scope) -> bool:
        """Whether the request names a host this service does not serve."""
        if self.any:
            return False
        host = ""
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
                break
        return host_name(host) not in self.allowed and _path(scope) not in PROBES

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        warn.warn("disallowed_host", "request for a host not in ALLOWED_HOSTS: 400")
        problem = Problem(400, "Invalid Host header: this host is not served here.")
        await _answer(scope, receive, send, self.render_for, problem, self.fallback)


class Admission:
    """Admission control: past MAX_REQUESTS_IN_FLIGHT requests in this worker, answer 503 with
    Retry-After at once (in the contract's format) rather than queue: a client retrying later
    is served sooner than one waiting behind thousands of others. Probes are never shed.

    A request is admitted only once its whole body has arrived (read here, then handed to the
    application as it came): a client trickling a body holds a connection, never a request
    slot, and the protocol's body deadline ends it (app/server.py). A body over the largest
    any route accepts is refused here (413); a client that hangs up mid-body is logged as a
    client disconnect, and its request as status 499, not as a server error.
    """

    def __init__(
        self, limit: int, max_body: int, render_for: Callable[[str], Renderer | None]
    ) -> None:
        self.limit = limit
        self.max_body = max_body
        self.in_flight = 0
        self.render_for = render_for

    async def enter(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[Receive, Admitted | None] | None:
        """Admit the request: the receive to hand the application (its body read whole) and
        its ticket (None for a probe, never counted); None when it was answered here (413,
        503) or its client left."""
        if _path(scope) in PROBES:
            return receive, None
        if _has_body(scope):
            declared = _declared_length(scope)
            if declared is not None and declared > self.max_body:
                problem = Problem(413, f"Request body is larger than {self.max_body} bytes.")
                await _answer(scope, receive, send, self.render_for, problem)
                return None
            try:
                body = await _read_body(receive, self.max_body)
            except _ClientGone:
                scope["state"]["client_gone"] = True
                log.info("client disconnected before its request body arrived")
                return None
            except PayloadTooLarge as exc:
                problem = Problem(413, exc.message)
                await _answer(scope, receive, send, self.render_for, problem)
                return None
            receive = _replay(body, receive)
        if self.in_flight >= self.limit:
            SHED.inc()
            warn.warn("shed", f"over {self.limit} requests in flight: answering 503")
            problem = Problem(
                503, "The service is busy; retry shortly.", headers={"Retry-After": "1"}
            )
            await _answer(scope, receive, send, self.render_for, problem)
            return None
        ticket = Admitted(self)
        scope["state"]["admitted"] = ticket
        return receive, ticket


class Admitted:
    """A request's place among those in flight, given back once (when it ends, or earlier
    by a route that is about to wait on something else: a long poll)."""

    __slots__ = ("_admission",)

    def __init__(self, admission: Admission) -> None:
        admission.in_flight += 1
        self._admission: Admission | None = admission

    def release(self) -> None:
        if self._admission is not None:
            self._admission.in_flight -= 1
            self._admission = None


class _ClientGone(Exception):
    """The client disconnected before its request body arrived whole."""


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length the request declares, if any."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


def _has_body(scope: Scope) -> bool:
    """Whether the request announces a body (a non-zero Content-Length, or chunked)."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            return value.strip() not in (b"0", b"")
        if key == b"transfer-encoding":
            return True
    return False


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes (declared or sent)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then listens on the connection (for a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


# Pages may set a stricter policy of their own; this one only forbids framing and plugins.
DEFAULT_CSP = b"frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
_HTML_HEADERS = (
    (b"content-security-policy", DEFAULT_CSP),
    (b"referrer-policy", b"no-referrer"),
)


def with_html_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An answer's headers, with a CSP forbidding framing and plugins and Referrer-Policy:
    no-referrer when it is an HTML page (a page that sets its own keeps them)."""
    kind = next((v for k, v in headers if k == b"content-type"), b"")
    if not kind.startswith(b"text/html"):
        return headers
    names = {k for k, _ in headers}
    return headers + [(k, v) for k, v in _HTML_HEADERS if k not in names]
