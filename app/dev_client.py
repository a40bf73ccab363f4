"""The development set-up's own API client, for Swagger UI's Authorize dialog.

`make run` on the embedded PostgreSQL prints a client id and secret with every staff scope,
so that /docs signs a person in without a second terminal. The database keeps only a hash of
a secret, so this one is also kept under DATA_DIR (owner-only, as the kept JWT secret is) to
be printed again by the next run. With DATABASE_URL set nothing of this happens.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from app.auth.tokens import STAFF_SCOPES
from app.db.embedded import data_path

if TYPE_CHECKING:
    from app.auth.service import AuthService

DEV_CLIENT_FILE = "dev_client.json"
DEV_CLIENT_NAME = "development (make run)"


def _kept(data_dir: str) -> tuple[str, str] | None:
    try:
        record = json.loads((data_path(data_dir) / DEV_CLIENT_FILE).read_text(encoding="utf-8"))
        return str(record["client_id"]), str(record["client_secret"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _keep(data_dir: str, client_id: str, secret: str) -> None:
    path = data_path(data_dir) / DEV_CLIENT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"client_id": client_id, "client_secret": secret}, handle)


async def ensure_dev_client(auth: AuthService, data_dir: str) -> tuple[str, str]:
    """The kept client while it is registered, unrevoked and has every staff scope; else a
    new one (kept in its place)."""
    kept = _kept(data_dir)
    if kept is not None:
        for row in await auth.list_clients():
            if (
                row["client_id"] == kept[0]
                and not row["revoked"]
                and set(str(row["scopes"]).split()) >= set(STAFF_SCOPES)
            ):
                return kept
    client_id, secret = await auth.create_client(DEV_CLIENT_NAME, list(STAFF_SCOPES))
    _keep(data_dir, client_id, secret)
    return client_id, secret
