"""Deletion tokens and the audit trail."""

import datetime as dt
import uuid

from sqlalchemy import BigInteger, DateTime, ForeignKey, LargeBinary, String, func, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class DeletionToken(Base):
    """A single-use data-deletion link; only the SHA-256 of the token is stored."""

    __tablename__ = "deletion_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    """What happened, to which record id, by whom: never personal data."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    action: Mapped[str] = mapped_column(String(50))
    # `customer` (subject_id: its ULID) or `loyalty_member` (subject_id: its internal id,
    # which survives a rename of loyalty_id).
    record_type: Mapped[str] = mapped_column(String(30))
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    # The names of the fields written or changed: never their values.
    fields: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))
