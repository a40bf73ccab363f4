"""The registry of every table of the store, for Alembic (migrations/env.py): it imports
every domain, which is why it sits at the top of the package and not in app/db/ (the
infrastructure imports no domain)."""

from app.audit import AuditEvent
from app.auth.models import AddressChange, ApiClient, EmailCode, ServerKey, SignInLimit
from app.customers.models import Customer
from app.db.count_tables import CachedCount, TableGeneration
from app.events.models import EventRelayCursor
from app.idempotency.models import IdempotencyKey
from app.loyalty.models import LoyaltyMember
from app.privacy.models import DeletionToken

__all__ = [
    "AddressChange",
    "ApiClient",
    "AuditEvent",
    "CachedCount",
    "Customer",
    "DeletionToken",
    "EmailCode",
    "EventRelayCursor",
    "IdempotencyKey",
    "LoyaltyMember",
    "ServerKey",
    "SignInLimit",
    "TableGeneration",
]
