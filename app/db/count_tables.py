"""The tables behind the count cache (migrations 0003 and 0005), declared for autogenerate.

Queries on them are plain SQL in `count_cache.py`; the trigger and the `table_generation`
function that maintain them exist only in the migrations.
"""

import datetime as dt

from sqlalchemy import BigInteger, DateTime, SmallInteger, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class TableGeneration(Base):
    """One shard of a table's generation, bumped by a statement trigger on every write."""

    __tablename__ = "table_generations"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("0"))
    generation: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class CachedCount(Base):
    """A count and the generation it was computed at (unlogged: a crash only empties it)."""

    __tablename__ = "count_cache"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    generation: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    total: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
