"""Request bodies without holding the event loop: linear-time repairs, big work in a thread."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")

# Past this many bytes (or items) parsing and validating run in a worker thread: a 5 MiB
# bulk body takes tens of milliseconds to parse and far longer to validate, time during
# which the loop would answer nobody, not even /healthz.
OFF_LOOP_BYTES = 64 * 1024
OFF_LOOP_ITEMS = 200

# Group 1: a run of text to keep (anything but quotes and commas, whole JSON strings, and
# commas not before a closing bracket); otherwise a comma before `}` or `]`, dropped.
# Linear on any input: the alternatives start with different characters and every loop is
# possessive, so nothing is ever retried; a string that never ends runs to the end of the
# text instead of failing (the old `("(?:\\.|[^"\\])*")|…` restarted at every escaped
# quote of an unterminated string: quadratic, 7.6 s for 30 KB). Long runs are kept in one
# match: no Python call per string.
_KEEP_OR_TRAILING_COMMA = re.compile(
    r'((?:[^",]++|"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|,(?!\s*+[}\]]))++)|,(?=\s*+[}\]])', re.S
)


def strip_trailing_commas(text: str) -> str:
    """`text` without the commas that directly precede `}` or `]` outside strings."""
    return _KEEP_OR_TRAILING_COMMA.sub(r"\1", text)


async def run_off_loop_if(large: bool, func: Callable[..., T], *args: object) -> T:
    """`func(*args)`: in a worker thread when the input is `large`, else right here (a
    thread hop costs more than parsing a small body)."""
    if not large:
        return func(*args)
    return await anyio.to_thread.run_sync(func, *args)
