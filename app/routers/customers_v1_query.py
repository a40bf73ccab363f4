"""List parameters of the v1 customer contract: filters, the timestamp and the sort order."""

import datetime as dt
import re
from typing import Any

from fastapi import Query

from app.customers.search import SortKey
from app.customers.validation import FieldError, clean_text

# Sortable v1 names → search sort keys.
SORTABLE = {
    "customerId": "id",
    "firstName": "first_name",
    "lastName": "last_name",
    "email": "email",
    "dob": "dob",
    "nationality": "nationality",
    "lastUpdated": "updated_at",
    "address.city": "address_city",
    "address.postCode": "address_post_code",
}
FILTER_MAX, FILTER_MAX_VALUES = 200, 50


def filter_text(errors: dict[str, list[str]], name: str, value: str | None) -> str | None:
    try:
        return clean_text(value, max_length=FILTER_MAX)
    except FieldError as exc:
        errors[name] = [str(exc)]
        return None


def filter_list(errors: dict[str, list[str]], name: str, value: str | None) -> tuple[str, ...]:
    """A comma-separated list (any of them matches); blank items are dropped."""
    if value is None:
        return ()
    items = [filter_text(errors, name, part) for part in value.split(",")]
    if len(items) > FILTER_MAX_VALUES:
        errors[name] = [f"must list at most {FILTER_MAX_VALUES} values"]
    return tuple(dict.fromkeys(i for i in items if i))


def timestamp(errors: dict[str, list[str]], value: str | None) -> dt.datetime | None:
    if value is None or not value.strip():
        return None
    # An unencoded '+' in a query string arrives as a space: "10:15:30 11:00" means "+11:00".
    text = re.sub(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$", r"\1+\2", value.strip())
    try:
        moment: dt.datetime | None = dt.datetime.fromisoformat(text)
        if moment is not None and moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC)  # also refuses instants outside year 1–9999
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        errors["lastUpdated"] = [
            "must be an ISO 8601 timestamp with an offset, e.g. 2017-12-03T10:15:30+11:00"
        ]
        return None
    return moment


def sort(errors: dict[str, list[str]], value: str | None) -> list[SortKey]:
    """`firstName,lastName:desc` → sort keys; unknown fields or directions are errors."""
    keys: dict[str, SortKey] = {}
    items = (value or "").split(",")
    if len(items) > 2 * len(SORTABLE):
        errors["sortBy"] = [f"must name at most {len(SORTABLE)} fields"]
        return []
    for item in items:
        field, _, direction = item.strip().partition(":")
        if not field:
            continue
        direction = direction.strip().lower() or "asc"
        if field not in SORTABLE:
            errors.setdefault("sortBy", []).append(
                f"cannot sort by '{field[:50]}'; use one of {', '.join(SORTABLE)}"
            )
        elif direction not in ("asc", "desc"):
            errors.setdefault("sortBy", []).append(f"direction of '{field}' must be asc or desc")
        else:
            keys.setdefault(field, SortKey(SORTABLE[field], direction == "desc"))
    return list(keys.values())


def query(name: str, description: str, example: str) -> Any:
    return Query(alias=name, description=description, examples=[example])
