"""The HMAC secret tokens are signed with: checked before serving, or made and kept locally.

With a real database (`DATABASE_URL`) the operator must give a strong `JWT_SECRET`; the
embedded development set-up, given none, makes a random one once and keeps it under
`DATA_DIR` so that `jambo serve`, `jambo token` and every worker agree on it.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from app.config import Settings
from app.db.embedded import data_path

# Values that were ever published (.env.example, docker-compose.yml, the old default):
# anyone can sign staff tokens with them, so they are never used.
PUBLISHED_SECRETS = frozenset({"change-me-in-production-please-0123456789"})
MIN_SECRET_BYTES = 32
KEPT_SECRET_FILE = "jwt_secret"


def secret_problem(settings: Settings) -> str | None:
    """Why JWT_SECRET cannot guard a real database; None when it can (or is not used)."""
    if not settings.jwt_uses_hmac:
        return None  # RS/ES: tokens are checked with JWT_PUBLIC_KEY, the secret is unused
    secret = settings.jwt_secret.get_secret_value()
    if not secret:
        return "JWT_SECRET is not set: give a random value of at least 32 bytes"
    if secret in PUBLISHED_SECRETS:
        return "JWT_SECRET is the published example value: anyone could sign staff tokens"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes: too weak for HS256"
    return None


@lru_cache
def kept_secret(data_dir: str) -> str:
    """This installation's own secret under `data_dir`: made once (mode 0600), then reused."""
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    path = root / KEPT_SECRET_FILE
    if not path.exists():
        # Written aside and linked into place: two processes starting at once agree on one.
        draft = root / f".{KEPT_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    secret = path.read_text().strip()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise RuntimeError(f"{path} holds no usable secret: remove it to make a new one")
    return secret


def hmac_secret(settings: Settings) -> str:
    """The secret HS* tokens are signed and checked with.

    JWT_SECRET when it is set and not a published value; else the installation's kept one
    (a published value never signs or verifies anything, however the app is started).
    """
    secret = settings.jwt_secret.get_secret_value()
    if secret and secret not in PUBLISHED_SECRETS:
        return secret
    # The same folder as the embedded server's, whichever folder `jambo` is run from.
    return kept_secret(str(data_path(settings.data_dir)))


def database_configured(settings: Settings) -> bool:
    """Whether a real database is configured (as opposed to the embedded development one)."""
    return bool(settings.database_url or os.environ.get("DATABASE_URL"))
