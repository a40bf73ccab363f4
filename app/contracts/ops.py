"""Liveness and readiness probes."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import text

from app.contracts.deps import services
from app.contracts.http import JSON

router = APIRouter(tags=["Operations"])


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
        async with services(request).db.autocommit() as conn:
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return JSON({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if current != expected:
        return JSON(
            {"status": "unavailable", "migration": current, "expected": expected}, status_code=503
        )
    return JSON({"status": "ready", "migration": current})
