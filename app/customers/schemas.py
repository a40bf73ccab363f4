"""The contract-neutral customer record every router renders from."""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from app.ids import render_ulid

# Store field names a contract may write, in display order.
WRITABLE_FIELDS = (
    "first_name",
    "middle_name",
    "last_name",
    "email",
    "phone_number",
    "nationality",
    "dob",
    "gender",
    "passport_number",
    "national_id_number",
    "language",
    "address_line1",
    "address_line2",
    "address_city",
    "address_state",
    "address_post_code",
    "address_country",
)
ADDRESS_FIELDS = WRITABLE_FIELDS[11:]


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """One customer as stored."""

    id: uuid.UUID
    first_name: str
    middle_name: str | None
    last_name: str
    email: str | None
    phone_number: str | None
    nationality: str | None
    dob: dt.date | None
    gender: str | None
    passport_number: str | None
    national_id_number: str | None
    language: str
    address_line1: str | None
    address_line2: str | None
    address_city: str | None
    address_state: str | None
    address_post_code: str | None
    address_country: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int

    @classmethod
    def from_row(cls, row: Any) -> "CustomerRecord":
        """Build from a row of every column in field order (as `repository.COLUMNS` selects)."""
        return cls(*row)

    @property
    def ulid(self) -> str:
        return render_ulid(self.id)

    @property
    def etag(self) -> str:
        """A strong validator: the id and the version counter."""
        return f'"{self.ulid}-{self.version}"'
