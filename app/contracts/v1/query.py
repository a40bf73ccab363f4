"""List parameters of the v1 customer contract: filters, the timestamp and the sort order."""

import datetime as dt
import re
from typing import Any

from app.customers.search import FILTER_MAX_LENGTH, SortKey
from app.customers.validation import clean_text
from app.errors import FieldError, Message

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
# Filters are bounded by what can match: each value by the longest stored value of its field,
# a list by FILTER_MAX_VALUES values, all filters together by FILTERS_MAX_CHARACTERS.
FILTER_FIELDS = {
    "firstName": "first_name",
    "lastName": "last_name",
    "address.streetLine1": "address_line1",
    "address.streetLine2": "address_line2",
    "address.city": "address_city",
    "address.postCode": "address_post_code",
}
FILTER_MAX_VALUES, FILTERS_MAX_CHARACTERS = 20, 2000
PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000
# A page past the end is an empty page, however far (SPEC), up to what a JSON integer
# holds; more digits than this are junk.
PAGE_NO_DIGITS = 18
_DIGITS = re.compile(r"[0-9]+")


def page_number(value: str | None) -> int | None:
    """`pageNo`: 0 when absent, None when not a whole number of at most 18 ASCII digits."""
    if value is None or value == "":
        return 0
    value = value.strip()
    if len(value) > PAGE_NO_DIGITS or not _DIGITS.fullmatch(value):
        return None
    return int(value)


def unknown_parameters(errors: dict[str, list[str]], names: list[str]) -> None:
    """A parameter the list does not know is an error (a misspelt filter would otherwise
    be ignored and the caller given every customer)."""
    unknown = [n for n in dict.fromkeys(names) if n not in KNOWN_PARAMETERS]
    for name in unknown[:10]:
        errors[name[:50]] = [f"is not a parameter of this list; use one of {_KNOWN_TEXT}"]


def filter_text(errors: dict[str, list[str]], name: str, value: str | None) -> str | None:
    """One filter value, at most as long as its field's longest stored value."""
    try:
        return clean_text(value, max_length=FILTER_MAX_LENGTH[FILTER_FIELDS[name]])
    except FieldError as exc:
        errors[name] = [exc.message]
        return None


def filter_list(errors: dict[str, list[str]], name: str, value: str | None) -> tuple[str, ...]:
    """A comma-separated list (any of them matches); blank items are dropped."""
    if value is None:
        return ()
    parts = value.split(",")
    if len(parts) > FILTER_MAX_VALUES:
        errors[name] = [Message(f"must list at most {FILTER_MAX_VALUES} values", "too_many")]
        return ()
    items = [filter_text(errors, name, part) for part in parts]
    return tuple(dict.fromkeys(i for i in items if i))


def filters_length(errors: dict[str, list[str]], values: dict[str, str | None]) -> None:
    """All filters together are at most FILTERS_MAX_CHARACTERS long."""
    total = sum(len(v) for v in values.values() if v)
    if total > FILTERS_MAX_CHARACTERS:
        errors["filters"] = [
            Message(
                f"are {total} characters in all; at most {FILTERS_MAX_CHARACTERS}", "too_long_all"
            )
        ]


def timestamp(errors: dict[str, list[str]], value: str | None) -> dt.datetime | None:
    if value is None or not value.strip():
        return None
    # An unencoded '+' in a query string arrives as a space: "10:15:30 11:00" means "+11:00".
    text = re.sub(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)\Z", r"\1+\2", value.strip())
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


def _parameter(
    name: str, description: str, example: str | None = None, *, where: str = "query"
) -> dict[str, Any]:
    """An optional string parameter, as the OpenAPI describes one (for routes that read it
    from the request themselves)."""
    title = name if where == "query" else name.title()
    schema: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    if example is not None:
        schema["examples"] = [example]
    return {
        "name": name,
        "in": where,
        "required": False,
        "description": description,
        "schema": {**schema, "title": title, "description": description},
    }


# The list's query parameters, documented (the route reads them from the query string).
LIST_PARAMETERS = [
    _parameter("firstName", "Case-insensitive exact match", "John"),
    _parameter("lastName", "Case-insensitive exact match", "Smith"),
    _parameter("address.streetLine1", "Substring, any case; comma list = any", "George Street"),
    _parameter("address.streetLine2", "Substring, any case; comma list = any", "Mountain Street"),
    _parameter("address.city", "Substring, any case; comma list = any", "Sydney,Potts Point"),
    _parameter("address.postCode", "Exact; comma list = any", "2000,2145"),
    _parameter(
        "lastUpdated", "Updated at or after (ISO 8601 with offset)", "2017-12-03T10:15:30+11:00"
    ),
    _parameter("pageNo", "0-based page number", "0"),
    _parameter("pageSize", f"1–{MAX_PAGE_SIZE}, default {PAGE_SIZE}", "100"),
    _parameter("sortBy", "Fields, each optionally `:asc`/`:desc`", "firstName,lastName:desc"),
]


# The seed mentions an `access_token` query parameter (only to say not to combine it with
# the header): tolerated, never an error.
KNOWN_PARAMETERS = frozenset({p["name"] for p in LIST_PARAMETERS} | {"access_token"})
_KNOWN_TEXT = ", ".join(p["name"] for p in LIST_PARAMETERS)

IF_NONE_MATCH = _parameter(
    "if-none-match", "ETag from an earlier GET: 304 while it is current", where="header"
)
