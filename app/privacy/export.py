"""Right of access: everything held about one customer, as one JSON document."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app import audit
from app.customers import repository as customers
from app.db.database import Database
from app.errors import NotFound
from app.idempotency.store import answers_about
from app.ids import render_ulid
from app.loyalty import repository as loyalty

_CUSTOMER = "01HWJ8WH9X8WBK65EMGY9YKPBS"
EXAMPLE: dict[str, Any] = {
    "exported_at": "2026-12-01T09:30:00.123456+00:00",
    "customer": {
        "id": _CUSTOMER,
        "first_name": "Cynthia",
        "middle_name": "Alexander",
        "last_name": "Norris",
        "email": "aaron97@example.org",
        "email_key": "aaron97@example.org",
        "phone_number": "+254712345678",
        "nationality": "LS",
        "dob": "1912-09-06",
        "gender": None,
        "passport_number": None,
        "national_id_number": None,
        "language": "sw",
        "address_line1": "12 Moi Avenue",
        "address_line2": None,
        "address_city": "Nairobi",
        "address_state": None,
        "address_post_code": "00100",
        "address_country": "Kenya",
        "created_at": "2026-11-30T08:00:00.000000+00:00",
        "updated_at": "2026-11-30T08:05:00.000000+00:00",
        "version": 2,
    },
    "loyalty_memberships": [
        {
            "id": 4,
            "loyalty_id": "4",
            "cardno": "400100",
            "discount": "15.0000",
            "client_name": "Cynthia Norris",
            "client_birthday": "1912-09-06",
            "is_male": False,
            "customer_id": _CUSTOMER,
            "created_at": "2026-11-30T08:01:00.000000+00:00",
            "updated_at": "2026-11-30T08:01:00.000000+00:00",
        }
    ],
    "audit_trail": [
        {
            "at": "2026-11-30T08:00:00.000000+00:00",
            "action": "customer.created",
            "record_type": "customer",
            "record_id": _CUSTOMER,
            "actor": "staff:frontdesk",
            "fields": ["dob", "email", "first_name", "last_name", "middle_name", "nationality"],
        },
        {
            "at": "2026-11-30T08:05:00.000000+00:00",
            "action": "customer.updated",
            "record_type": "customer",
            "record_id": _CUSTOMER,
            "actor": f"customer:{_CUSTOMER}",
            "fields": ["language"],
        },
    ],
    "stored_answers": [
        {
            "created_at": "2026-11-30T08:00:00.000000+00:00",
            "expires_at": "2026-12-01T08:00:00.000000+00:00",
            "status": 201,
        }
    ],
}


class ExportedCustomer(BaseModel):
    """Every stored field of the customer (store names; id as its ULID)."""

    model_config = ConfigDict(extra="allow")
    id: str
    first_name: str
    last_name: str
    dob: str | None = Field(None, description="YYYY-MM-DD")
    created_at: str
    updated_at: str
    version: int


class ExportedMembership(BaseModel):
    """Every stored field of a linked loyalty membership."""

    model_config = ConfigDict(extra="allow")
    id: int
    loyalty_id: str
    client_birthday: str | None = Field(None, description="YYYY-MM-DD")


class ExportedAuditLine(BaseModel):
    """What was done to the customer's records, when and by whom: field names, no values."""

    at: str
    action: str = Field(examples=["customer.updated"])
    record_type: str = Field(examples=["customer"])
    record_id: str
    actor: str = Field(examples=["staff:frontdesk"])
    fields: list[str]


class ExportedAnswer(BaseModel):
    """A copy of the record kept to replay the answer to a retried create (Idempotency-Key)
    until it expires; erased with the customer."""

    created_at: str
    expires_at: str
    status: int


class CustomerExport(BaseModel):
    """Everything held about one person (a JSON attachment)."""

    model_config = ConfigDict(json_schema_extra={"example": EXAMPLE})
    exported_at: str
    customer: ExportedCustomer
    loyalty_memberships: list[ExportedMembership]
    audit_trail: list[ExportedAuditLine]
    stored_answers: list[ExportedAnswer]


def _plain(value: Any) -> Any:
    """A stored value as JSON shows it: ULIDs for customer ids, decimals as strings."""
    if isinstance(value, uuid.UUID):
        return render_ulid(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def filename(ulid: str) -> str:
    """The attachment's file name."""
    return f"jambo-export-{ulid}.json"


class ExportService:
    """Gathers a customer's record, memberships and audit trail in one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def export(self, customer_id: uuid.UUID) -> dict[str, Any]:
        """The export document, or NotFound."""
        async with self.db.transaction() as conn:
            record = await customers.stored_fields(conn, customer_id)
            if record is None:
                raise NotFound("Customer not found.")
            members = await loyalty.for_customer(conn, customer_id)
            lines = await audit.trail(
                conn,
                {
                    "customer": [render_ulid(customer_id)],
                    "loyalty_member": [str(m["id"]) for m in members],
                },
            )
            answers = await answers_about(conn, customer_id)
        return {
            "exported_at": dt.datetime.now(dt.UTC).isoformat(),
            "customer": {k: _plain(v) for k, v in record.items()},
            "loyalty_memberships": [{k: _plain(v) for k, v in m.items()} for m in members],
            "audit_trail": [
                {
                    "at": _plain(line["at"]),
                    "action": line["action"],
                    "record_type": line["record_type"],
                    "record_id": line["subject_id"],
                    "actor": line["actor"],
                    "fields": list(line["fields"]),
                }
                for line in lines
            ],
            "stored_answers": [{k: _plain(v) for k, v in a.items()} for a in answers],
        }
