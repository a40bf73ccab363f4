"""The loyalty-programme register."""

import datetime as dt
import decimal
import uuid

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Numeric, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class LoyaltyMember(Base):
    """A member of a shop's loyalty programme, keyed in URLs by `loyalty_id`."""

    __tablename__ = "loyalty_members"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    loyalty_id: Mapped[str] = mapped_column(String(50), unique=True)
    cardno: Mapped[str | None] = mapped_column(String(20))
    discount: Mapped[decimal.Decimal | None] = mapped_column(Numeric(20, 4))
    client_name: Mapped[str | None] = mapped_column(String(200))
    client_birthday: Mapped[dt.date | None] = mapped_column(Date)
    is_male: Mapped[bool | None] = mapped_column(Boolean)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        Index("ix_loyalty_members_cardno", "cardno"),
        Index("ix_loyalty_members_client_name", "client_name"),
    )
