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
