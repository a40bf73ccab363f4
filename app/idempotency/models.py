"""The stored answers of Idempotency-Keys."""

import datetime as dt
import uuid

from sqlalchemy import DateTime, ForeignKey, Index, LargeBinary, SmallInteger, String, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class IdempotencyKey(Base):
    """The first 2xx answer to one key of one caller, until expires_at (written in the same
    transaction as the work it answers: a row exists exactly when the work committed)."""

    __tablename__ = "idempotency_keys"

    # SHA-256 of the caller's whole identity (role and token `sub`).
    caller: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 of method, path and body: another body under the same key is refused.
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    status: Mapped[int] = mapped_column(SmallInteger)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # The customer whose data the answer holds: erasing them erases the answer.
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE")
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_idempotency_keys_expires_at", "expires_at"),
        Index(
            "ix_idempotency_keys_customer_id",
            "customer_id",
            postgresql_where=text("customer_id IS NOT NULL"),
        ),
    )
