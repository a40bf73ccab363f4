"""The loyalty register's OPTIONS document, as DRF's SimpleMetadata writes it."""

from typing import Any

from app.loyalty.schemas import PARSES


def _field(kind: str, required: bool, label: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "required": required, "read_only": False}
    if label:
        out["label"] = label
    return {**out, **extra}


_ACTION_FIELDS: dict[str, dict[str, Any]] = {
    "url": {"type": "field", "required": False, "read_only": True},
    "loyalty_id": _field("string", True, max_length=50),
    "cardno": _field("string", False, "cardno", max_length=20),
    "discount": _field("decimal", False, "discount"),
    "client_name": _field("string", True, "client name", max_length=200),
    "client_birthday": _field("date", True),
    "is_male": _field("boolean", False, "is male"),
}


def metadata(name: str, action: str | None) -> dict[str, Any]:
    """The OPTIONS document of the seed (DRF's SimpleMetadata); no `actions` without one."""
    document: dict[str, Any] = {
        "name": name,
        "description": "Loyalty",
        "renders": ["application/json", "text/html"],
        "parses": list(PARSES),
    }
    if action:
        document["actions"] = {action: _ACTION_FIELDS}
    return document
