"""The one place that validates an e-mail, a phone number, a country, a date of birth."""

import datetime as dt
import re
import unicodedata
from functools import lru_cache

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email

from app.errors import FieldError

MIN_DOB = dt.date(1900, 1, 1)
NAME_MAX = 100
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")  # + lone surrogates


def clean_text(value: object, *, max_length: int, required: bool = False) -> str | None:
    """Strip a string, refuse control characters (PostgreSQL rejects NUL) and overlong input."""
    if value is None:
        if required:
            raise FieldError("This field is required.", "required")
        return None
    if not isinstance(value, str):
        raise FieldError("Not a valid string.", "not_string")
    value = value.strip()
    if _CONTROL.search(value):
        raise FieldError("Control characters are not allowed.", "control_characters")
    if not value:
        if required:
            raise FieldError("This field may not be blank.", "blank")
        return None
    if len(value) > max_length:
        raise FieldError(
            f"Ensure this field has no more than {max_length} characters.",
            "too_long",
            max_length=max_length,
        )
    return value


def normalize_email(value: str) -> str:
    """Check the syntax (no DNS look-up) and return the normalised address."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise FieldError("Enter a valid email address.", "invalid_email") from exc


def address_key(value: str) -> str:
    """An e-mail address in the one form addresses are compared in everywhere (sign-in,
    uniqueness, look-up): the checked address (or the text as given, if it is none), in
    Unicode NFKC, then case-folded. Done here, never by PostgreSQL's lower(): the two fold
    case differently (`İx@…` and `i̇x@…` must get the same answer on every path)."""
    try:
        text = normalize_email(value.strip())
    except FieldError:
        text = value.strip()
    return key_of_normalized(text)


def key_of_normalized(address: str) -> str:
    """`address_key` of an address `normalize_email` already returned (not checked again)."""
    return unicodedata.normalize("NFKC", address).casefold()


def normalize_phone(value: str, region: str) -> str:
    """Parse a phone number (national numbers in `region`) and render it in E.164."""
    candidates = [value]
    # "254712345678": international digits written without the "+" (common in Kenya).
    digits = re.sub(r"[\s().-]", "", value)
    prefix = str(phonenumbers.country_code_for_region(region))
    if digits.isdigit() and digits.startswith(prefix):
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise FieldError("Enter a valid phone number.", "invalid_phone")


# English names in everyday use that ISO 3166 spells otherwise (or no longer lists).
COUNTRY_ALIASES = {
    "russia": "RU",
    "ivory coast": "CI",
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "united states of america": "US",
    "america": "US",
    "uae": "AE",
    "north korea": "KP",
    "laos": "LA",
    "syria": "SY",
    "vatican": "VA",
    "vatican city": "VA",
    "holy see vatican city state": "VA",
    "macedonia": "MK",
    "swaziland": "SZ",
    "burma": "MM",
    "cape verde": "CV",
    "east timor": "TL",
    "palestine": "PS",
    "palestinian territory": "PS",
    "micronesia": "FM",
    "libyan arab jamahiriya": "LY",
    "turkey": "TR",
    "holland": "NL",
    "the netherlands": "NL",
    "brunei": "BN",
    "dr congo": "CD",
    "drc": "CD",
    "democratic republic of the congo": "CD",
    "republic of the congo": "CG",
    "saint helena": "SH",
    "saint martin": "MF",
    "pitcairn islands": "PN",
    "svalbard and jan mayen islands": "SJ",
    "the gambia": "GM",
    "the bahamas": "BS",
}


def _plain(text: str) -> str:
    """Lower case, no accents, "&" as "and", single spaces, no punctuation but apostrophes."""
    text = text.replace("\u2019", "'")  # a typographic apostrophe
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    folded = re.sub(r"[^a-z0-9' ]", " ", folded.lower().replace("&", " and "))
    return " ".join(folded.split())


@lru_cache(maxsize=1)
def _country_names() -> dict[str, str]:
    names = dict(COUNTRY_ALIASES)
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                names.setdefault(_plain(value), country.alpha_2)
    return names


@lru_cache(maxsize=4096)
def country_code(value: str) -> str:
    """Alpha-2 code for an alpha-2 or alpha-3 code or an English country name."""
    text = value.strip()
    country = None
    if len(text) == 2:
        country = pycountry.countries.get(alpha_2=text.upper())
    elif len(text) == 3:
        country = pycountry.countries.get(alpha_3=text.upper())
    if country is not None:
        return str(country.alpha_2)
    names = _country_names()
    # "Slovakia (Slovak Republic)", "Bouvet Island (Bouvetoya)": the name before the brackets.
    for candidate in (_plain(text), _plain(text.split("(")[0])):
        if candidate in names:
            return names[candidate]
    raise FieldError(
        "Enter a valid country: an ISO 3166-1 code or English name.", "invalid_country"
    )


@lru_cache(maxsize=512)
def country_name(code: str | None) -> str | None:
    """The English (common, where there is one) name of an alpha-2 code."""
    if not code:
        return None
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    return str(getattr(country, "common_name", None) or country.name)


def _bad_date() -> FieldError:
    return FieldError("Enter a valid date in the format YYYY-MM-DD.", "invalid_date")


def parse_dob(value: object, today: dt.date | None = None) -> dt.date:
    """A date of birth: ISO `YYYY-MM-DD`, not in the future, not before 1900-01-01."""
    if isinstance(value, dt.datetime):
        raise _bad_date()
    if isinstance(value, dt.date):
        day = value
    elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError as exc:
            raise FieldError(
                "Enter a valid date in the format YYYY-MM-DD.", "invalid_date"
            ) from exc
    else:
        raise _bad_date()
    if day > (today or dt.date.today()):
        raise FieldError("Date of birth cannot be in the future.", "date_in_future")
    if day < MIN_DOB:
        raise FieldError("Date of birth cannot be before 1900-01-01.", "date_too_early")
    return day


def check_language(value: str, supported: list[str]) -> str:
    """A language code from the supported list (case-insensitive)."""
    code = value.strip().lower()
    if code not in supported:
        raise FieldError(
            f"Unsupported language; choose one of: {', '.join(supported)}.",
            "unsupported_language",
            choices=supported,
        )
    return code
