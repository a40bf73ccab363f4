"""Translation between the v1 contract and the core: names, bodies, ETags and the resource."""

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Any

from app.contracts.deps import CustomersDep
from app.contracts.http import JSON
from app.contracts.v1.schemas import V1AddressIn, V1CustomerIn
from app.customers.schemas import CustomerRecord
from app.customers.service import CustomerService
from app.errors import Invalid, Message
from app.ids import parse_ulid

# v1 name → store field. Messages from the core name store fields; they are shown in v1 names.
FIELDS = {
    "firstName": "first_name",
    "lastName": "last_name",
    "middleName": "middle_name",
    "email": "email",
    "phoneNumber": "phone_number",
    "nationality": "nationality",
    "dob": "dob",
    "gender": "gender",
}
ADDRESS = {
    "addressLine1": "address_line1",
    "addressLine2": "address_line2",
    "city": "address_city",
    "state": "address_state",
    "postCode": "address_post_code",
    "country": "address_country",
}
NAME_FIELDS = ("first_name", "last_name", "middle_name")
NAME_MAX = 30  # this contract's documented limit (the store allows 100)


def present(c: CustomerRecord) -> dict[str, Any]:
    """The v1 representation of a customer."""
    return {
        "customerId": c.ulid,
        "firstName": c.first_name,
        "lastName": c.last_name,
        "middleName": c.middle_name,
        "email": c.email,
        "phoneNumber": c.phone_number,
        "nationality": c.nationality,
        "dob": c.dob.isoformat() if c.dob else None,
        "gender": c.gender,
        "address": {
            "addressLine1": c.address_line1,
            "addressLine2": c.address_line2,
            "city": c.address_city,
            "state": c.address_state,
            "postCode": c.address_post_code,
            "country": c.address_country,
        },
        "lastUpdated": c.updated_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
    }


def replacement(body: V1CustomerIn) -> dict[str, Any]:
    """PUT: every v1 field, absent ones cleared."""
    address = body.address or V1AddressIn()
    return {store: getattr(body, v1) for v1, store in FIELDS.items()} | {
        store: getattr(address, v1) for v1, store in ADDRESS.items()
    }


def merge_patch(body: V1CustomerIn) -> dict[str, Any]:
    """PATCH (RFC 7396): only the members sent change; `null` clears; `address` is merged."""
    changes = {FIELDS[v1]: getattr(body, v1) for v1 in body.model_fields_set if v1 in FIELDS}
    if "address" in body.model_fields_set:
        if body.address is None:
            changes |= dict.fromkeys(ADDRESS.values())
        else:
            sent = body.address.model_fields_set
            changes |= {
                store: getattr(body.address, v1) for v1, store in ADDRESS.items() if v1 in sent
            }
    return changes


def check_names(
    changes: Mapping[str, Any], customers: CustomerService, *, creating: bool = False
) -> None:
    """This contract's own rule (names ≤ 30); reported together with the core's findings."""
    errors: dict[str, list[str]] = {
        name: [
            Message(
                f"Ensure this field has no more than {NAME_MAX} characters.",
                "too_long",
                max_length=NAME_MAX,
            )
        ]
        for name in NAME_FIELDS
        if isinstance(changes.get(name), str) and len(changes[name].strip()) > NAME_MAX
    }
    if not errors:
        return
    try:
        customers.check(changes, creating=creating)  # only to list its errors too
    except Invalid as exc:
        errors = exc.errors | errors
    raise Invalid(errors)


def tags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


async def expected_version(
    if_match: str | None, customer_id: uuid.UUID, customers: CustomersDep
) -> int | None:
    """The version an If-Match header allows (strong comparison); 0 matches no version."""
    if if_match is None or if_match.strip() == "*":
        return None
    versions: set[int] = set()
    for tag in tags(if_match):
        m = re.fullmatch(r'"([0-9A-Za-z]{26})-(\d{1,9})"', tag)
        if m and parse_ulid(m.group(1)) == customer_id:
            versions.add(int(m.group(2)))
    if len(versions) == 1:
        return versions.pop()
    if versions:  # several candidates: the current one, if listed (the UPDATE re-checks it)
        current = (await customers.get(customer_id)).version
        return current if current in versions else 0
    return 0


def not_modified(if_none_match: str | None, record: CustomerRecord) -> bool:
    """Weak comparison, as If-None-Match uses."""
    if if_none_match is None:
        return False
    etags = [t.removeprefix("W/") for t in tags(if_none_match)]
    return "*" in etags or record.etag in etags


def resource(record: CustomerRecord, status: int = 200, envelope: bool = False) -> JSON:
    headers = {"ETag": record.etag, "Cache-Control": "max-age=0"}
    payload: Any = present(record)
    if envelope:
        payload = {"success": True, "status": status, "data": payload}
    return JSON(payload, status_code=status, headers=headers)
