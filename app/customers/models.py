"""The customer table."""

import datetime as dt
import uuid

from sqlalchemy import Date, DateTime, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class Customer(Base):
    """A customer: the one record every contract reads and writes."""

    __tablename__ = "customers"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    first_name: Mapped[str] = mapped_column(String(100))
    middle_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    # The address in the form addresses are compared in (validation.address_key): unique.
    # NULL for a row that lost its address to an older customer in migration 0009.
    email_key: Mapped[str | None] = mapped_column(Text)
    phone_number: Mapped[str | None] = mapped_column(String(20))
    nationality: Mapped[str | None] = mapped_column(String(2))
    dob: Mapped[dt.date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(30))
    passport_number: Mapped[str | None] = mapped_column(String(50))
    national_id_number: Mapped[str | None] = mapped_column(String(50))
    language: Mapped[str] = mapped_column(String(10), server_default="en")
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    address_city: Mapped[str | None] = mapped_column(String(100))
    address_state: Mapped[str | None] = mapped_column(String(100))
    address_post_code: Mapped[str | None] = mapped_column(String(20))
    address_country: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))

    # Every index the migrations create (0001, 0002, 0004, 0009), so that autogenerate proposes
    # no drops; the trigram indexes exist only where pg_trgm does (see migrations/env.py).
    __table_args__ = (
        Index("uq_customers_email_key", email_key, unique=True),
        Index(
            "ix_customers_lower_first_name",
            func.lower(first_name),
            "id",
            postgresql_include=["first_name"],
        ),
        Index(
            "ix_customers_lower_last_name",
            func.lower(last_name),
            "id",
            postgresql_include=["last_name"],
        ),
        Index(
            "ix_customers_lower_last_first_name",
            func.lower(last_name),
            func.lower(first_name),
            "id",
        ),
        Index("ix_customers_updated_at", "updated_at"),
        Index("ix_customers_address_post_code", "address_post_code"),
        Index("ix_customers_dob_id", "dob", "id"),
        Index("ix_customers_nationality_id", "nationality", "id"),
        Index("ix_customers_updated_at_id", "updated_at", "id"),
        Index("ix_customers_lower_address_city_id", func.lower(address_city), "id"),
        Index("ix_customers_address_post_code_id", "address_post_code", "id"),
    )
