"""The edge of the service: one pure-ASGI layer around every request (forwarded headers,
ROOT_PATH, request ids, access lines and metrics, and the guards of app/contracts/guards.py)."""

import ipaddress
import logging
import random
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.contracts.guards import Admission, HostCheck, with_html_headers
from app.logs import REQUEST_ID
from app.metrics import LATENCY, REQUESTS

log = logging.getLogger("jambo.access")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Every answer, JSON, exports and errors included: browsers must not guess a content type.
NOSNIFF = (b"x-content-type-options", b"nosniff")
# Metric labels take the method from this set only: a client can send any token as one.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class EdgeMiddleware:
    """Everything the service does around every request, in one pure-ASGI layer (six layers
    did it before: each a coroutine and a send wrapper per request, a tenth of a by-id GET's
    own CPU time), in this order:

    1. X-Forwarded-* from trusted proxies, and ROOT_PATH;
    2. a request id (echoing a sane incoming X-Request-ID), the access line and metrics;
    3. the Host check (app/contracts/guards.py);
    4. admission, which reads the body first (guards.py);
    5. on every answer: X-Request-ID and nosniff; on HTML pages also a CSP forbidding
       framing and Referrer-Policy: no-referrer.
    """

    def __init__(
        self,
        app: ASGIApp,
        forwarded: "ForwardedHeaders",
        root_path: str,
        hosts: HostCheck,
        admission: Admission,
    ) -> None:
        self.app = app
        self.forwarded = forwarded
        self.root_path = root_path.rstrip("/")
        self.hosts = hosts
        self.admission = admission
        # Labelled metric children by (method, route, status): labels() costs a lock and a
        # validation per call, a visible share of the hottest requests.
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def _observe(self, method: str, route: str, status: str, elapsed: float) -> None:
        series = self._series.get((method, route, status))
        if series is None:
            series = (REQUESTS.labels(method, route, status), LATENCY.labels(method, route))
            self._series[(method, route, status)] = series
        series[0].inc()
        series[1].observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.forwarded.apply(scope)
        if self.root_path:
            with_root_path(scope, self.root_path)
        if kind != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        # An id need not be unguessable, only unique enough: getrandbits is ~10x cheaper.
        request_id = incoming if _SAFE_ID.fullmatch(incoming) else f"{random.getrandbits(128):032x}"
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        logged_as = REQUEST_ID.set(request_id)  # for every line logged while serving it
        status = 0
        start = time.perf_counter()
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k != b"x-request-id" and k != b"x-content-type-options"
                ]
                headers.append(id_header)
                headers.append(NOSNIFF)
                message["headers"] = with_html_headers(headers)
            await send(message)

        try:
            if self.hosts.refuses(scope):
                await self.hosts.refuse(scope, receive, send_with_headers)
                return
            admitted = await self.admission.enter(scope, receive, send_with_headers)
            if admitted is None:
                return
            body_receive, ticket = admitted
            try:
                await self.app(scope, body_receive, send_with_headers)
            finally:
                if ticket is not None:
                    ticket.release()
        finally:
            elapsed = time.perf_counter() - start
            if not status:  # no answer: the client left first (499, as nginx logs it), or a bug
                status = 499 if state.get("client_gone") else 500
            route = _template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self._observe(method, route, str(status), elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "sub": state.get("principal_sub"),
                    },
                )
            REQUEST_ID.reset(logged_as)


def _template(scope: Scope) -> str:
    """The matched route's path template (never the raw path: it may hold ids or tokens)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class ForwardedHeaders:
    """Applies X-Forwarded-For/-Proto/-Host/-Port from trusted proxies only.

    `trusted` is FORWARDED_ALLOW_IPS: a comma list of addresses or networks, or `*`.
    """

    def __init__(self, trusted: str) -> None:
        items = [t.strip() for t in trusted.split(",") if t.strip()]
        self.trust_all = "*" in items
        self.networks = []
        for item in items:
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                continue  # a host name or junk: never matches a peer address

    def _trusted(self, host: str | None) -> bool:
        if self.trust_all:
            return True
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        return any(address in net for net in self.networks)

    def _client(self, value: bytes | None) -> str:
        """The right-most X-Forwarded-For entry that is not one of our proxies: entries to
        its left were written by the client itself and prove nothing."""
        entries = [e.strip() for e in (value or b"").decode("latin-1").split(",")]
        for entry in reversed(entries):
            if entry and not self._trusted(entry):
                return entry
        return next((e for e in entries if e), "")

    def apply(self, scope: Scope) -> None:
        """Rewrite the scope's scheme, Host and client as a trusted proxy says they were."""
        # Cheap scan first: most requests carry no forwarded headers at all.
        headers = {k: v for k, v in scope["headers"] if k.startswith(b"x-forwarded-")}
        if headers and self._trusted((scope.get("client") or (None,))[0]):
            # Proto, host and port: the entry our proxy appended (the last); earlier ones
            # came from whoever called it and may be anything.
            proto = _last(headers.get(b"x-forwarded-proto"))
            if proto in ("http", "https"):
                scope["scheme"] = proto
            host = _last(headers.get(b"x-forwarded-host"))
            port = _last(headers.get(b"x-forwarded-port"))
            if host and _HOST.fullmatch(host):
                if port.isdigit() and ":" not in host:
                    host = f"{host}:{port}"
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [
                    (b"host", host.encode("latin-1"))
                ]
            client = self._client(headers.get(b"x-forwarded-for"))
            if client:
                scope["client"] = (client, 0)


_HOST = re.compile(r"[A-Za-z0-9.\-\[\]:]{1,255}")


def _last(value: bytes | None) -> str:
    """The last entry of a comma-separated forwarded header ('' when absent)."""
    return (value or b"").decode("latin-1").rsplit(",", 1)[-1].strip()


def with_root_path(scope: Scope, root_path: str) -> None:
    """Serve the app under ROOT_PATH behind a gateway that strips (or keeps) that prefix, as
    uvicorn's --root-path does, so links, docs and redirects carry the prefix however the
    app is run."""
    scope["root_path"] = root_path
    if not scope["path"].startswith(root_path + "/") and scope["path"] != root_path:
        scope["path"] = root_path + scope["path"]
        raw = scope.get("raw_path")
        if raw is not None:
            scope["raw_path"] = root_path.encode() + raw
