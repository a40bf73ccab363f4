"""Audit lines: an action, the record's id and the actor, never personal data."""

import uuid

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.customers.ids import render_ulid
from app.db.base import table_of
from app.privacy.models import AuditEvent


async def record(conn: AsyncConnection, action: str, subject: uuid.UUID, actor: str) -> None:
    """Append one audit line inside the caller's transaction."""
    await conn.execute(
        insert(table_of(AuditEvent)).values(
            action=action, subject_id=render_ulid(subject), actor=actor[:100]
        )
    )
