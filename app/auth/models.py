"""API clients (client-credentials grant) and e-mailed sign-in codes."""

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class ApiClient(Base):
    """A registered API client; the secret is kept only as a salted hash."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(500), server_default="")
    revoked: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class EmailCode(Base):
    """A one-time sign-in code mailed to a customer; only its hash is stored."""

    __tablename__ = "email_codes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class SignInLimit(Base):
    """Times of recent wrong code guesses and mailed codes, per (customer, client IP) and per
    customer across clients (client `*`); see app/auth/limits.py."""

    __tablename__ = "sign_in_limits"

    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    client: Mapped[str] = mapped_column(String(45), primary_key=True)
    wrong_guesses: Mapped[list[dt.datetime]] = mapped_column(
        ARRAY(DateTime(timezone=True)), server_default="{}"
    )
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    codes_mailed: Mapped[list[dt.datetime]] = mapped_column(
        ARRAY(DateTime(timezone=True)), server_default="{}"
    )


class AddressChange(Base):
    """A customer's new sign-in address, pending until the code mailed to it is entered."""

    __tablename__ = "address_changes"

    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    new_email: Mapped[str] = mapped_column(String(254))
    # Only when the address was free when asked for (no code is mailed to a taken one).
    code_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ServerKey(Base):
    """A random key the server made for itself (keyed hashes); never configured, never public."""

    __tablename__ = "server_keys"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
