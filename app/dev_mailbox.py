"""Development mail kept as files under DATA_DIR/mail, for `jambo mail` to show.

Without SMTP_HOST nothing is delivered; a sign-in code or deletion link must still reach the
person trying the service, and a JSON log line with escaped newlines is a poor place to look
for it. Each message is one small file (written off the event loop, readable by its owner
only: codes and links are credentials); the newest KEEP are kept.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from app.db.embedded import data_path

KEEP = 100
_LINK = re.compile(r"https?://\S+")
_CODE = re.compile(r"\b\d{6}\b")


@dataclass(frozen=True)
class KeptMail:
    """One message as kept: who to, about what, when, and its text."""

    to: str
    subject: str
    body: str
    sent_at: str

    @property
    def links(self) -> list[str]:
        return _LINK.findall(self.body)

    @property
    def code(self) -> str | None:
        """The one-time code the message carries (a sign-in or address-change code)."""
        found = _CODE.search(_LINK.sub("", self.body))
        return found.group() if found else None


def mail_folder(data_dir: str) -> Path:
    return data_path(data_dir) / "mail"


def keep(data_dir: str, to: str, subject: str, body: str) -> Path:
    """Write one message; older ones past KEEP are removed. Raises OSError if it cannot."""
    folder = mail_folder(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    name = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(4)}.json"
    record = {"to": to, "subject": subject, "body": body, "sent_at": now.isoformat()}
    path = folder / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(record, handle, ensure_ascii=False)
    for old in sorted(folder.glob("*.json"))[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def latest(data_dir: str, count: int = 5, to: str | None = None) -> list[KeptMail]:
    """The newest `count` messages (to one address, any case, when given), newest first."""
    folder = mail_folder(data_dir)
    if not folder.is_dir():
        return []
    found: list[KeptMail] = []
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            mail = KeptMail(record["to"], record["subject"], record["body"], record["sent_at"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # removed meanwhile, or not one of ours
        if to is not None and mail.to.casefold() != to.casefold():
            continue
        found.append(mail)
        if len(found) >= count:
            break
    return found
