"""The stored Idempotency-Key claims and the answers they replay."""

import datetime as dt

from sqlalchemy import DateTime, Index, LargeBinary, SmallInteger, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class IdempotencyKey(Base):
    """One key of one caller: in flight (status NULL) or the first answer, until expires_at."""

    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 of method, path and body: another body under the same key is refused.
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    status: Mapped[int | None] = mapped_column(SmallInteger)
    headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # In flight: when the claim lapses (a crashed worker must not lock the key for good);
    # answered: created_at + the retention (24 h). Past it the row is purged or taken over.
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)
