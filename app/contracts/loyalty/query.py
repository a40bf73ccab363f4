"""The loyalty register's list query: search, the is_male filter and ordering, parsed as
DRF's filters read them, and the patterns that document them in the OpenAPI."""

from app.errors import Invalid, Message
from app.loyalty.schemas import MAX_LENGTH, NUL_MSG, ORDERING_FIELDS, words_pattern

ORDERING_MSG = (
    'Unknown ordering field "{}": use cardno, client_name, client_birthday or identifier, '
    'with "-" for descending.'
)


# A term longer than any field it searches (client_name, cardno) matches nothing: refused
# before it costs the database a pass over every member.
SEARCH_MAX = max(MAX_LENGTH["client_name"], MAX_LENGTH["cardno"])


def parse_search(value: str | None) -> str | None:
    """The `search` term (None when empty)."""
    if value and "\x00" in value:
        raise Invalid({"search": [NUL_MSG]})
    if value and len(value) > SEARCH_MAX:
        message = f"Ensure this field has no more than {SEARCH_MAX} characters."
        raise Invalid({"search": [Message(message, "too_long", max_length=SEARCH_MAX)]})
    return value or None


# The `is_male` filter's choices (any case, spaces around ignored); unknown: no filter.
IS_MALE_CHOICES = {"true": True, "1": True, "false": False, "0": False, "unknown": None, "": None}


def parse_is_male(value: str | None) -> bool | None:
    """The `is_male` filter: True, False, or None for no filter."""
    text = (value or "").strip().lower()
    if text in IS_MALE_CHOICES:
        return IS_MALE_CHOICES[text]
    raise Invalid(
        {"is_male": [f"Select a valid choice. {value} is not one of the available choices."]}
    )


def parse_ordering(value: str | None) -> tuple[str, ...]:
    """`ordering` as field names, `-` kept for descending; unknown names are an error."""
    names = tuple(part.strip() for part in (value or "").split(",") if part.strip())
    for name in names:
        if name.removeprefix("-") not in ORDERING_FIELDS:
            raise Invalid({"ordering": [ORDERING_MSG.format(name)]})
    return names


IS_MALE_PATTERN = words_pattern(IS_MALE_CHOICES)
_ORDERING_ITEM = rf"\s*(?:-?(?:{'|'.join(ORDERING_FIELDS)}))?\s*"
ORDERING_PATTERN = rf"^{_ORDERING_ITEM}(?:,{_ORDERING_ITEM})*$"
SEARCH_PATTERN = r"^[^\u0000]*$"
