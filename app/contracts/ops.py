"""Liveness and readiness probes."""

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.contracts.deps import services
from app.contracts.http import JSON
from app.contracts.openapi import DocumentContext, DocumentPart

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


def _metrics_as_text(schema: dict[str, Any], context: DocumentContext) -> None:
    """/metrics answers Prometheus's text format, never JSON."""
    operation = schema["paths"].get("/metrics", {}).get("get")
    if operation is None:
        return
    for answer in operation.get("responses", {}).values():
        answer.pop("content", None)
    operation["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}


PART = DocumentPart(
    tags=("Operations",),
    operation_ids={
        ("get", "/healthz"): "ops_healthz",
        ("get", "/readyz"): "ops_readyz",
        ("get", "/metrics"): "ops_metrics",
    },
    examples={("get", "/metrics"): "# HELP http_requests_total Requests answered\n"},
    adjust=_metrics_as_text,
)
