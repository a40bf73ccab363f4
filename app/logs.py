"""JSON logs on stdout, one object per line."""

import json
import logging
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}

# The id of the request being served (set by the edge layer, app/middleware.py, for the request's
# task): every line logged while serving it carries it, not only the access line.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# More fields for every line, from whoever added them (app/tracing.py: trace and span ids).
_fields: list[Callable[[], dict[str, str]]] = []


def add_fields(source: Callable[[], dict[str, str]]) -> None:
    """Have every line carry the fields `source()` returns when the line is written."""
    if source not in _fields:
        _fields.append(source)


class JsonFormatter(logging.Formatter):
    """Renders a record and its `extra` fields as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for source in _fields:
            entry.update(source())
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str) -> None:
    """Route every logger (ours, uvicorn's) through the JSON formatter."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own access line replaces uvicorn's (it knows the route template and principal).
    logging.getLogger("uvicorn.access").disabled = True


class RateLimitedLog:
    """One warning per event kind every few seconds, with how many were folded into it."""

    def __init__(self, logger: logging.Logger, every: float = 5.0) -> None:
        self.logger = logger
        self.every = every
        self.last: dict[str, float] = {}
        self.folded: dict[str, int] = {}

    def warn(self, event: str, message: str) -> None:
        now = time.monotonic()
        if now - self.last.get(event, -self.every) < self.every:
            self.folded[event] = self.folded.get(event, 0) + 1
            return
        self.last[event] = now
        extra = {"event": event, "folded_since_last": self.folded.pop(event, 0)}
        self.logger.warning(message, extra=extra)
