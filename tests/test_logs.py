"""JSON log lines: every line written while serving a request carries its id."""

import io
import json
import logging
from typing import Any

import httpx

from app.logs import JsonFormatter
from tests.conftest import edge_alone


async def test_every_line_logged_while_serving_carries_the_request_id() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("jambo.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        logger.warning("inside")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    edge = edge_alone(endpoint, "127.0.0.1")
    transport = httpx.ASGITransport(app=edge)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            await http.get("/", headers={"X-Request-ID": "req-42"})
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert inside["msg"] == "inside" and inside["request_id"] == "req-42"
    assert outside["msg"] == "outside" and "request_id" not in outside
