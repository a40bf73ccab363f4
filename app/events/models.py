"""Where the broker relay has got to in the change feed."""

import datetime as dt

from sqlalchemy import DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class EventRelayCursor(Base):
    """The last event a relay published and had confirmed (by relay name)."""

    __tablename__ = "event_relay_cursors"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
