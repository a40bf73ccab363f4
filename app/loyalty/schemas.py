"""Loyalty members: the stored record, and DRF-style parsing of one input item.

Messages are Django REST framework's, word for word: clients of the register were written
against them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import FieldError

# Input field names in the order DRF reports their errors (the serializer's field order).
FIELDS = ("loyalty_id", "cardno", "discount", "client_name", "client_birthday", "is_male")
REQUIRED = ("loyalty_id", "client_name", "client_birthday")
MAX_LENGTH = {"loyalty_id": 50, "cardno": 20, "client_name": 200}
MAX_DIGITS, DECIMAL_PLACES = 20, 4
ORDERING_FIELDS = ("cardno", "client_name", "client_birthday", "identifier")
PARSES = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")

REQUIRED_MSG = "This field is required."
NULL_MSG = "This field may not be null."
BLANK_MSG = "This field may not be blank."
STRING_MSG = "Not a valid string."
NUL_MSG = "Null characters are not allowed."
NUMBER_MSG = "Enter a number."
PLACES_MSG = f"Ensure that there are no more than {DECIMAL_PLACES} decimal places."
DIGITS_MSG = f"Ensure that there are no more than {MAX_DIGITS} digits in total."
WHOLE_MSG = (
    f"Ensure that there are no more than {MAX_DIGITS - DECIMAL_PLACES} digits "
    "before the decimal point."
)
DATE_MSG = "Date has wrong format. Use one of these formats instead: YYYY[-MM[-DD]]"
BOOLEAN_MSG = "Must be a valid boolean."
TAKEN_MSG = "loyalty member with this loyalty_id already exists."

_TRUE = {"t", "y", "yes", "true", "on", "1"}
_FALSE = {"f", "n", "no", "false", "off", "0"}
_NULL = {"", "null", "none"}
_ABSENT = object()
_ISO = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?(?:[T ]00:00(?::00(?:\.0+)?)?(?:Z)?)?")
_US = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
# A discount no bound can refuse: at most 16 whole digits and 4 places, ASCII, no spaces.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]{1,16}(?:\.[0-9]{1,4})?")


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One loyalty member as stored (the contract renders it)."""

    loyalty_id: str
    cardno: str | None
    discount: decimal.Decimal | None
    client_name: str | None
    client_birthday: dt.date | None
    is_male: bool | None

    @classmethod
    def from_row(cls, row: Any) -> MemberRecord:
        return cls(*(row[i] for i in range(6)))


def expected_dict(value: object) -> dict[str, list[str]]:
    """DRF's error for an item that is not a JSON object."""
    name = type(value).__name__ if value is not None else "NoneType"
    return {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {name}."]}


def _string(value: object, field: str, *, blank_ok: bool) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):  # noqa: UP038 - faster
        raise FieldError(STRING_MSG)
    text = str(value).strip()
    if "\x00" in text:
        raise FieldError(NUL_MSG)
    if not text.isascii():  # (ASCII cannot hold a surrogate: the usual case skips the encode)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
            raise FieldError(STRING_MSG) from None
    if not text and not blank_ok:
        raise FieldError(BLANK_MSG)
    limit = MAX_LENGTH[field]
    if len(text) > limit:
        raise FieldError(f"Ensure this field has no more than {limit} characters.")
    return text


def parse_decimal(value: object) -> decimal.Decimal:
    """A discount: numeric(20,4); strings and JSON numbers both accepted."""
    if type(value) is str and _PLAIN_DECIMAL.fullmatch(value):
        return decimal.Decimal(value)  # within every bound below: nothing to check
    if isinstance(value, bool) or not isinstance(value, str | int | float | decimal.Decimal):
        raise FieldError(NUMBER_MSG)
    text = str(value).strip()
    if len(text) > 100:
        raise FieldError(NUMBER_MSG)
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise FieldError(NUMBER_MSG) from None
    if not number.is_finite():
        raise FieldError(NUMBER_MSG)
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    if exponent >= 0:
        whole, places = len(digits) + exponent, 0
    else:
        places = -exponent
        whole = max(len(digits) - places, 0)
    if places > DECIMAL_PLACES:
        raise FieldError(PLACES_MSG)
    if whole + places > MAX_DIGITS:
        raise FieldError(DIGITS_MSG)
    if whole > MAX_DIGITS - DECIMAL_PLACES:
        raise FieldError(WHOLE_MSG)
    return number


def parse_date(value: object) -> dt.date:
    """YYYY-MM-DD, YYYY-MM and YYYY (first day), M/D/YYYY (month first), or our own output."""
    if not isinstance(value, str):
        raise FieldError(DATE_MSG)
    text = value.strip()
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        # YYYY-MM-DD, the usual spelling: the C parser, ~4x faster than the patterns below
        # (what it refuses, such as non-ASCII digits, still goes through them).
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    try:
        if m := _ISO.fullmatch(text):
            year, month, day = int(m[1]), int(m[2] or 1), int(m[3] or 1)
        elif m := _US.fullmatch(text):
            month, day, year = int(m[1]), int(m[2]), int(m[3])
        else:
            raise FieldError(DATE_MSG)
        return dt.date(year, month, day)
    except ValueError:
        raise FieldError(DATE_MSG) from None


def parse_boolean(value: object) -> bool | None:
    """DRF's truthy/falsy spellings; null and '' mean unknown."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        if text in _NULL:
            return None
    raise FieldError(BOOLEAN_MSG)


def _discount(value: object) -> decimal.Decimal | None:
    if isinstance(value, str) and not value.strip():
        return None
    return parse_decimal(value)


# Each field's cleaner (a dict look-up, not a chain of comparisons: it runs per field of
# every item of a bulk upload).
_CLEAN: dict[str, Callable[[object], object]] = {
    "loyalty_id": lambda value: _string(value, "loyalty_id", blank_ok=False),
    "cardno": lambda value: _string(value, "cardno", blank_ok=True) or None,
    "discount": _discount,
    "client_name": lambda value: _string(value, "client_name", blank_ok=False),
    "client_birthday": parse_date,
    "is_male": parse_boolean,
}


def parse_item(
    raw: object, *, partial: bool = False
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Clean one input item: (values, {}) or ({}, {field: [message]}).

    A full item (POST, PUT) needs the required fields and sets every other field (absent →
    null); a partial one (PATCH) sets only the fields it names.
    """
    if not isinstance(raw, Mapping):
        return {}, expected_dict(raw)
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for field in FIELDS:
        value = raw.get(field, _ABSENT)
        if value is _ABSENT:
            if partial:
                continue
            if field in REQUIRED:
                errors[field] = [REQUIRED_MSG]
            else:
                values[field] = None
            continue
        if value is None:
            if field in REQUIRED:
                errors[field] = [NULL_MSG]
            else:
                values[field] = None
            continue
        try:
            values[field] = _CLEAN[field](value)
        except FieldError as exc:
            errors[field] = [exc.message]
    return ({}, errors) if errors else (values, {})


def render_discount(value: decimal.Decimal | None) -> str | None:
    """At least two decimals: 15 → "15.00", 3.125 → "3.1250" (the stored scale beyond two)."""
    if value is None:
        return None
    cents = value.quantize(decimal.Decimal("0.01"))
    if cents == value:
        return f"{cents:f}"
    return f"{value.quantize(decimal.Decimal('0.0001')):f}"


def render_birthday(value: dt.date | None) -> str | None:
    """The documented `YYYY-MM-DDT00:00:00`."""
    return f"{value.isoformat()}T00:00:00" if value else None


# What the value parsers accept, as JSON Schema patterns for the OpenAPI document (ECMA 262
# has no inline case flag, so any-case words are spelled `[Tt][Rr][Uu][Ee]`).


def words_pattern(words: Iterable[str]) -> str:
    """Any of `words` in any case with spaces around: what `.strip().lower() in words` reads."""
    spelled = (
        "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in word)
        for word in sorted(words)
        if word
    )
    return rf"^\s*(?:{'|'.join(spelled)}){'?' if '' in words else ''}\s*$"


BOOLEAN_PATTERN = words_pattern(_TRUE | _FALSE | _NULL)
DATE_PATTERN = rf"^\s*(?:{_ISO.pattern}|{_US.pattern})\s*$"
