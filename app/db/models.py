"""Every table of the store, imported by Alembic's env.py."""

from app.audit import AuditEvent
from app.auth.models import ApiClient, EmailCode
from app.customers.models import Customer
from app.db.count_tables import CachedCount, TableGeneration
from app.idempotency.models import IdempotencyKey
from app.loyalty.models import LoyaltyMember
from app.privacy.models import DeletionToken

__all__ = [
    "ApiClient",
    "AuditEvent",
    "CachedCount",
    "Customer",
    "DeletionToken",
    "EmailCode",
    "IdempotencyKey",
    "LoyaltyMember",
    "TableGeneration",
]
