"""LIKE patterns built from user text."""

LIKE_ESCAPE = "\\"


def contains(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its own %, _ and backslash literally
    (use with `escape=LIKE_ESCAPE`)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
