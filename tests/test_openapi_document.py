"""The OpenAPI document is what generated clients are built from: it changes only on purpose.

A deliberate change regenerates the snapshot:
`UPDATE_OPENAPI_SNAPSHOT=1 .venv/bin/pytest tests/test_openapi_document.py`, and the diff of
`tests/openapi.json` is reviewed with the change.
"""

import json
import os
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("openapi.json")


def _render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def test_the_document_matches_its_snapshot(app: Any) -> None:
    current = _render(app.openapi())
    if os.environ.get("UPDATE_OPENAPI_SNAPSHOT"):
        SNAPSHOT.write_text(current, encoding="utf-8")
    assert current == SNAPSHOT.read_text(encoding="utf-8"), (
        "the OpenAPI document changed; if on purpose, regenerate the snapshot (see this file)"
    )
