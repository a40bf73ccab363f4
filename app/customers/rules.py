"""Validate a set of store-field changes: every field checked by the one rule it has."""

from collections.abc import Callable, Mapping
from typing import Any

from app.config import Settings
from app.customers import validation as v
from app.errors import FieldError, Invalid, Message

REQUIRED_IN_STORE = ("first_name", "last_name")


def _text(max_length: int) -> Callable[[Any, Settings], Any]:
    return lambda value, _s: v.clean_text(value, max_length=max_length)


def _then(max_length: int, parse: Callable[[str, Settings], Any]) -> Callable[[Any, Settings], Any]:
    def rule(value: Any, settings: Settings) -> Any:
        text = v.clean_text(value, max_length=max_length)
        return None if text is None else parse(text, settings)

    return rule


def _dob(value: Any, _s: Settings) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return v.parse_dob(value)


RULES: dict[str, Callable[[Any, Settings], Any]] = {
    "first_name": _text(v.NAME_MAX),
    "middle_name": _text(v.NAME_MAX),
    "last_name": _text(v.NAME_MAX),
    "email": _then(254, lambda t, _s: v.normalize_email(t)),
    "phone_number": _then(40, lambda t, s: v.normalize_phone(t, s.default_phone_region)),
    "nationality": _then(100, lambda t, _s: v.country_code(t)),
    "dob": _dob,
    "gender": _text(30),
    "passport_number": _text(50),
    "national_id_number": _text(50),
    "language": _then(10, lambda t, s: v.check_language(t, s.supported_languages)),
    "address_line1": _text(200),
    "address_line2": _text(200),
    "address_city": _text(100),
    "address_state": _text(100),
    "address_post_code": _text(20),
    "address_country": _text(100),
}


def clean_changes(
    raw: Mapping[str, Any], settings: Settings, *, creating: bool = False
) -> dict[str, Any]:
    """Validate every given field; raise Invalid with all messages keyed by store field."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for name, value in raw.items():
        rule = RULES.get(name)
        if rule is None:
            errors[name] = [Message("Unknown field.", "unknown_field")]
            continue
        try:
            clean[name] = rule(value, settings)
        except FieldError as exc:
            errors[name] = [exc.message]
    for name in REQUIRED_IN_STORE:
        if name in errors:
            continue
        if (creating or name in clean) and clean.get(name) is None:
            errors[name] = [Message("This field is required.", "required")]
    if "language" in clean and clean["language"] is None:
        clean["language"] = "en"
    if errors:
        raise Invalid(errors)
    return clean
