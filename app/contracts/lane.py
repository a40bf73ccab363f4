"""The hot reads by id, dispatched without the framework's general layers.

A GET that the router would hand to a route with a direct handler (routing.py's
`_direct_handler`: plain string path parameters, the request and one bearer policy) is
matched here and given to that route's contract handler at once. Starlette's exception
middleware, FastAPI's exit stacks, the router's walk over some sixty routes and the
request/response wrappers were a fifth of such a request's CPU under load (py-spy), and have
nothing to do for it: the contract handler renders every error itself, there is no
dependency with `yield`, and the endpoint returns its own Response. Every other request goes
on to the app unchanged.

The router's choice is kept exactly: a route earlier in its list that could match the same
path (decided once, from the paths' fixed prefixes) is asked at request time, and if it
matches, the request goes the usual way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from starlette._utils import get_route_path
from starlette.convertors import StringConvertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class _Entry:
    __slots__ = ("route", "regex", "handler", "shadows")

    def __init__(self, route: Route, handler: Handler, shadows: list[BaseRoute]) -> None:
        self.route = route
        self.regex: re.Pattern[str] = route.path_regex
        self.handler = handler
        self.shadows = shadows


class FastLane:
    """Pure-ASGI: sits just inside the service's own middleware (CORS, replica choice, the
    edge), so the hot reads get everything those do; only the framework's layers inside
    them are skipped."""

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router
        self._entries: list[_Entry] | None = None  # built at the first request: routes final

    def _build(self) -> list[_Entry]:
        entries: list[_Entry] = []
        earlier: list[BaseRoute] = []
        for route in self.router.routes:
            handler = getattr(route, "lane_handler", None)
            if (
                handler is not None
                and isinstance(route, Route)
                and all(isinstance(c, StringConvertor) for c in route.param_convertors.values())
            ):
                shadows = [r for r in earlier if _may_overlap(r, route)]
                entries.append(_Entry(route, handler, shadows))
            earlier.append(route)
        return entries

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        entries = self._entries
        if entries is None:
            entries = self._entries = self._build()
        path = get_route_path(scope)
        for entry in entries:
            found = entry.regex.match(path)
            if found is None:
                continue
            if any(r.matches(scope)[0] is Match.FULL for r in entry.shadows):
                break  # the router would pick an earlier route: let it
            route = entry.route
            scope["router"] = self.router
            scope["endpoint"] = route.endpoint
            scope["route"] = route
            scope["path_params"] = found.groupdict()
            response = await entry.handler(Request(scope, receive, send))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _fixed_prefix(route: BaseRoute) -> str | None:
    """The literal start every path the route matches begins with (None: unknown)."""
    if isinstance(route, Mount):
        return route.path + "/" if route.path else ""
    if isinstance(route, Route):
        return route.path.split("{", 1)[0]
    return None


def _may_overlap(earlier: BaseRoute, hot: Route) -> bool:
    """Whether `earlier` could match a path that `hot` matches, for a GET: False only when
    that is certain (a method set without GET, or fixed prefixes that part ways)."""
    methods = getattr(earlier, "methods", None)
    if isinstance(earlier, Route) and methods is not None and "GET" not in methods:
        return False
    mine, theirs = _fixed_prefix(hot), _fixed_prefix(earlier)
    if mine is None or theirs is None:
        return True
    if isinstance(earlier, Route) and "{" not in earlier.path:
        return hot.path_regex.match(earlier.path) is not None  # one literal path: try it
    return mine.startswith(theirs) or theirs.startswith(mine)
