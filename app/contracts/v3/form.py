"""The v3 self-service form: field definitions, rendering, and v3 → store translation.

Validation is not done here: submitted values are translated to store fields and checked by
`rules.clean_changes` (through `CustomerService.update`). This module only adds what the v3
form itself promises on top of the store: e-mail is required, gender is one of its choices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import pycountry

from app.customers.schemas import ADDRESS_FIELDS, CustomerRecord

REQUIRED = "This field is required."
GENDERS = (
    ("female", "Female"),
    ("male", "Male"),
    ("other", "Other"),
    ("prefer_not_to_say", "Prefer not to say"),
)


# What a form field holds, so that a frontend can pick its input by it.
FieldType = Literal["string", "email", "phone", "date", "country", "choice"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One v3 form field and the store field it writes."""

    name: str
    store: str
    type: FieldType
    label: str
    required: bool = False
    max_length: int | None = None


# Display order. max_length mirrors the limits in rules.RULES (a test checks they agree).
FIELDS = (
    FieldSpec("first_name", "first_name", "string", "First name", True, 100),
    FieldSpec("last_name", "last_name", "string", "Last name", True, 100),
    FieldSpec("mobile", "phone_number", "phone", "Mobile number"),
    FieldSpec("email", "email", "email", "Email address", True, 254),
    FieldSpec("nationality", "nationality", "country", "Nationality"),
    FieldSpec("dob", "dob", "date", "Date of birth"),
    FieldSpec("gender", "gender", "choice", "Gender"),
    FieldSpec("passport_number", "passport_number", "string", "Passport number", False, 50),
    FieldSpec("nation_id_number", "national_id_number", "string", "National ID number", False, 50),
    FieldSpec("language", "language", "choice", "Preferred language"),
    FieldSpec("address", "address_line1", "string", "Address", False, 200),
)
BY_NAME = {f.name: f for f in FIELDS}
BY_STORE = {f.store: f for f in FIELDS}


def address_text(c: CustomerRecord) -> str | None:
    """The stored address parts that are not empty, joined with ", " (None if all are)."""
    parts = [getattr(c, name) for name in ADDRESS_FIELDS]
    return ", ".join(p for p in parts if p) or None


def values(c: CustomerRecord) -> dict[str, Any]:
    """A customer's v3 field values (alpha-2 nationality, ISO dob, one address string)."""
    return {
        "first_name": c.first_name,
        "last_name": c.last_name,
        "mobile": c.phone_number,
        "email": c.email,
        "nationality": c.nationality,
        "dob": c.dob.isoformat() if c.dob else None,
        "gender": c.gender,
        "passport_number": c.passport_number,
        "nation_id_number": c.national_id_number,
        "language": c.language,
        "address": address_text(c),
    }


@lru_cache(maxsize=64)
def language_label(code: str) -> str:
    """The English name of a language code ("sw" → "Swahili"), the code when unknown."""
    language = pycountry.languages.get(alpha_2=code.split("-")[0])
    if language is None:
        return code
    return str(language.name).split(" (")[0]


def choices(name: str, languages: Sequence[str]) -> list[dict[str, str]] | None:
    """The `{"value","label"}` options of a choice field, None for other fields."""
    if name == "gender":
        return [{"value": v, "label": label} for v, label in GENDERS]
    if name == "language":
        return [{"value": c, "label": language_label(c)} for c in languages]
    return None


def render(
    current: Mapping[str, Any],
    languages: Sequence[str],
    errors: Mapping[str, list[str]] | None = None,
    pending_email: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The form object: one entry per field, keyed by v3 name, in display order (the e-mail
    entry names the address waiting for its confirmation code, if one is)."""
    errors = errors or {}
    form: dict[str, dict[str, Any]] = {}
    for f in FIELDS:
        entry: dict[str, Any] = {"type": f.type, "label": f.label, "required": f.required}
        if f.max_length is not None:
            entry["max_length"] = f.max_length
        options = choices(f.name, languages)
        if options is not None:
            entry["choices"] = options
        entry["value"] = current.get(f.name)
        entry["errors"] = list(errors.get(f.name, ()))
        if f.name == "email" and pending_email:
            entry["pending"] = pending_email
        form[f.name] = entry
    return form


def _plain(value: Any) -> Any:
    """A submitted value; an echoed schema entry (`{"value": …, …}`) counts as its value."""
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass
class Submission:
    """A POSTed form split into store changes, v3-only errors and the values to echo."""

    changes: dict[str, Any]
    errors: dict[str, list[str]]
    unknown: list[str]
    echoed: dict[str, Any]


def read_submission(body: Mapping[str, Any], current: Mapping[str, Any]) -> Submission:
    """Translate v3 names to store fields and apply the form's own promises (required, choices).

    A submitted value equal to the current one is not a change: a frontend that posts the
    whole form back must not collapse a multi-part address into line 1.
    """
    sub = Submission(changes={}, errors={}, unknown=[], echoed=dict(current))
    for name, raw in body.items():
        spec = BY_NAME.get(name)
        if spec is None:
            shown = name if len(name) <= 50 else name[:50] + "…"
            sub.unknown.append(f"Unknown field: '{shown}'.")
            continue
        value = _plain(raw)
        sub.echoed[name] = value
        if spec.required and _blank(value):
            sub.errors[name] = [REQUIRED]
            continue
        if value == current.get(name):
            continue
        if name == "gender" and isinstance(value, str) and value.strip():
            allowed = {v: v for v, _ in GENDERS} | {label.lower(): v for v, label in GENDERS}
            canonical = allowed.get(value.strip().lower())
            if canonical is None:
                sub.errors[name] = [f'"{value.strip()[:50]}" is not one of the available choices.']
                continue
            value = canonical
        if spec.name == "address":
            sub.changes.update({part: None for part in ADDRESS_FIELDS})
        sub.changes[spec.store] = value
    return sub


def errors_by_v3_name(store_errors: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Store-keyed messages (from rules.clean_changes) keyed by v3 field name."""
    out: dict[str, list[str]] = {}
    for store, messages in store_errors.items():
        spec = BY_STORE.get(store)
        name = spec.name if spec else "address" if store in ADDRESS_FIELDS else store
        bucket = out.setdefault(name, [])
        bucket.extend(m for m in messages if m not in bucket)
    return out
