"""Small HTTP helpers shared by the contracts."""

import re
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response


class JSON(Response):
    """A JSON response serialised with orjson (dates, decimals-as-strings done by callers)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def wants_html(request: Request) -> bool:
    """Whether the client asked for HTML (a browser), not JSON."""
    return "text/html" in request.headers.get("accept", "")


# ASCII digits only: str.isdigit() also admits "²" and "٣", which int() refuses or reads.
_INTEGER = re.compile(r"-?[0-9]+")


def parse_int(value: str | None, default: int) -> int | None:
    """An integer query parameter: the default when absent, None when malformed or absurd."""
    if value is None or value == "":
        return default
    value = value.strip()
    if not _INTEGER.fullmatch(value) or len(value) > 9:
        return None
    return int(value)


# DRF-style page-number paging, shared by the Jambo list and the loyalty register.
INVALID_PAGE = {"detail": "Invalid page."}


def clamp_page_size(value: str | None, default: int, maximum: int) -> int:
    """A page size: the default when absent, malformed or below 1; capped at the maximum."""
    size = parse_int(value, default)
    return default if size is None or size < 1 else min(size, maximum)


def page_number(value: str | None) -> int | None:
    """A 1-based page number (1 when absent); None when malformed or below 1."""
    number = parse_int(value, 1)
    return number if number is not None and number >= 1 else None


def attachment(document: Any, filename: str) -> JSON:
    """A JSON document to save as a file; personal data, so never cached on the way."""
    return JSON(
        document,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
