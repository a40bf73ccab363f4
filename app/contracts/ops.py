"""Liveness and readiness probes."""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.contracts.deps import services
from app.contracts.http import JSON

router = APIRouter(tags=["Operations"])
READY_WITHIN = 1.5  # seconds
RETRY = {"Retry-After": "5"}


@router.get(
    "/healthz",
    summary="The process is alive",
    responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
)
async def healthz() -> Response:
    return JSON({"status": "ok"})


@router.get(
    "/readyz",
    summary="The database is reachable and migrated to head",
    responses={
        200: {"content": {"application/json": {"example": {"status": "ready"}}}},
        503: {"content": {"application/json": {"example": {"status": "unavailable"}}}},
    },
)
async def readyz(request: Request) -> Response:
    expected = request.app.state.head_revision
    try:
        # Probes give up after a few seconds: answer within 2 s whatever the database does.
        async with asyncio.timeout(READY_WITHIN):
            current = await services(request).db.schema_revision()
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return JSON(
            {"status": "unavailable", "database": "unreachable"},
            status_code=503,
            headers=RETRY,
        )
    if current != expected:
        return JSON(
            {"status": "unavailable", "migration": current, "expected": expected},
            status_code=503,
            headers=RETRY,
        )
    return JSON({"status": "ready", "migration": current})
