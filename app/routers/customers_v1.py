"""Stub: replaced by the contract's implementation."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.contract import Problem, contract_route
from app.http import JSON


def render(request: Request, problem: Problem) -> Response:
    """Errors in this contract's format."""
    return JSON({"detail": problem.message}, status_code=problem.status)


router = APIRouter(route_class=contract_route(render))
