"""Customer ids: ULIDs stored as uuid, rendered as 26-character Crockford strings."""

import re
import uuid

from ulid import ULID

from app.errors import NotFound

ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"
# Matched whole: `$` also matches before a final newline, and "<ulid>\n" then reached
# ULID.from_str, which refuses it (a 500).
_ULID_RE = re.compile(ULID_PATTERN.removeprefix("^").removesuffix("$"))


def new_id() -> uuid.UUID:
    """A fresh, time-sortable id."""
    return ULID().to_uuid()


def parse_ulid(text: str) -> uuid.UUID | None:
    """The uuid of a ULID string, or None when it is not one."""
    if not _ULID_RE.fullmatch(text):
        return None
    return ULID.from_str(text.upper()).to_uuid()


def render_ulid(value: uuid.UUID) -> str:
    """The 26-character string of a stored id."""
    return str(ULID.from_bytes(value.bytes))


def customer_id_or_404(text: str) -> uuid.UUID:
    """The uuid of a customer ULID in a path; anything else names no customer (NotFound)."""
    customer_id = parse_ulid(text)
    if customer_id is None:
        raise NotFound("Customer not found.")
    return customer_id
