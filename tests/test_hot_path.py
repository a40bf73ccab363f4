"""Guards for the hot paths: nothing a request depends on runs in the thread pool."""

import inspect

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.contracts import oauth as auth
from app.contracts import ops as health
from app.contracts.jambo import router as customers
from app.contracts.loyalty import router as loyalty
from app.contracts.v1 import router as customers_v1
from app.contracts.v3 import language
from app.contracts.v3 import router as me

ROUTERS = (customers, customers_v1, loyalty, me, language, auth, health)


def _sync_calls(dependant: Dependant) -> list[str]:
    found = []
    for dep in dependant.dependencies:
        call = dep.call
        target = call if inspect.isfunction(call) else getattr(call, "__call__", call)  # noqa: B004
        if not inspect.iscoroutinefunction(target):
            found.append(getattr(call, "__name__", repr(call)))
        found += _sync_calls(dep)
    return found


@pytest.mark.parametrize("module", ROUTERS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_dependency_and_endpoint_is_async(module) -> None:
    """FastAPI runs plain `def` dependencies and endpoints in a thread pool: on a read that
    takes a fraction of a millisecond, that hop costs more than the query (measured)."""
    routes = [r for r in module.router.routes if isinstance(r, APIRoute)]
    assert routes
    for route in routes:
        assert inspect.iscoroutinefunction(route.endpoint), route.path
        assert _sync_calls(route.dependant) == [], route.path


def test_the_hot_reads_by_id_take_the_lane(settings) -> None:
    """The by-id GETs of the benchmark are served by app/contracts/lane.py: a dependency added
    to either route would quietly send it back through the framework's layers."""
    from app.contracts.lane import FastLane
    from app.main import create_app

    app = create_app(settings)
    hot = {entry.route.path for entry in FastLane(app, app.router)._build()}
    assert {"/api/v1/customers/{customer_id}", "/api/customer/{customer_ulid}"} <= hot


async def test_the_lane_picks_the_route_the_router_would() -> None:
    """A route earlier in the list that matches the same path wins, as in the router; other
    methods, and paths no hot route matches, go to the router."""
    import httpx
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, Router

    from app.contracts.lane import FastLane

    async def plain(request):
        return PlainTextResponse(f"router {request.path_params}")

    async def lane(request):
        return PlainTextResponse(f"lane {request.path_params} {request.scope['route'].path}")

    def hot(path: str) -> Route:
        route = Route(path, plain, methods=["GET", "POST"])
        route.lane_handler = lane  # what contract_route sets on a direct GET
        return route

    router = Router(
        [
            Route("/things/export", plain, methods=["GET"]),
            Route("/things/{key}", plain, methods=["DELETE"]),
            hot("/things/{key}"),
            hot("/other/{key}"),
            Route("/other/special", plain, methods=["GET"]),  # after: never reached by GET
        ]
    )
    transport = httpx.ASGITransport(app=FastLane(router, router))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/things/export")).text == "router {}"
        assert (await c.get("/things/a1")).text == "lane {'key': 'a1'} /things/{key}"
        assert (await c.post("/things/a1")).text == "router {'key': 'a1'}"
        assert (await c.get("/other/special")).text == "lane {'key': 'special'} /other/{key}"
        assert (await c.get("/things/a1/")).status_code == 307  # the router's slash redirect
        assert (await c.get("/nowhere")).status_code == 404
