"""The Jambo contract's wire schemas and its representation of a customer."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from app.contracts.http import JSON
from app.customers.schemas import CustomerRecord
from app.customers.validation import country_name
from app.errors import Invalid, Message


class CustomerIn(BaseModel):
    """The six documented fields (all required) and an optional middle name."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "example": {
                "first_name": "Cynthia",
                "last_name": "Norris",
                "middle_name": "Alexander",
                "email": "aaron97@example.org",
                "nationality": "Lesotho",
                "dob": "1912-09-06",
                "phone_number": "+254712345678",
            }
        },
    )

    first_name: StrictStr
    last_name: StrictStr
    middle_name: StrictStr | None = None
    email: StrictStr
    nationality: StrictStr
    dob: StrictStr
    phone_number: StrictStr


class CustomerOut(BaseModel):
    """A customer as this contract shows it."""

    ulid: str = Field(examples=["01HWJ8WH9X8WBK65EMGY9YKPBS"])
    first_name: str
    last_name: str
    middle_name: str | None
    nationality: str | None = Field(examples=["Lesotho"])
    dob: str | None = Field(examples=["1912-09-06"])
    email: str | None
    phone_number: str | None = Field(examples=["+254712345678"])


class CustomerEnvelope(BaseModel):
    statusCode: int = Field(examples=[200])
    body: CustomerOut


class CustomerListResults(BaseModel):
    statusCode: int = Field(examples=[200])
    body: list[CustomerOut]


class CustomerList(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: CustomerListResults


class MessageEnvelope(BaseModel):
    """A message, or the field errors of a 400/409 (`{"field": ["message", …]}`)."""

    statusCode: int
    body: str | dict[str, list[str]] | None = None


class DeletionRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"origin": "http://localhost:8000"}})
    origin: StrictStr


class JamboDetail(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": MessageEnvelope, "description": "Invalid input: `{field: [messages]}`"},
    401: {"model": MessageEnvelope, "description": "Missing or invalid bearer token"},
    403: {"model": MessageEnvelope, "description": "Not allowed for this token"},
    404: {"model": MessageEnvelope, "description": "No such customer"},
    413: {"model": MessageEnvelope, "description": "Body over the size limit"},
}


def present(c: CustomerRecord) -> dict[str, Any]:
    """The Jambo representation of a customer."""
    return {
        "ulid": c.ulid,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "middle_name": c.middle_name,
        "nationality": country_name(c.nationality),
        "dob": c.dob.isoformat() if c.dob else None,
        "email": c.email,
        "phone_number": c.phone_number,
    }


def ok(payload: Any, status: int = 200) -> JSON:
    return JSON({"statusCode": status, "body": payload}, status_code=status)


# Required by this contract (SPEC): present and not blank (DRF's CharField refuses "").
REQUIRED = ("first_name", "last_name", "email", "nationality", "dob", "phone_number")
BLANK = Message("This field may not be blank.", "blank")


def changes_of(body: CustomerIn) -> dict[str, Any]:
    """The store fields a POST or PUT sets: all six, none of them blank."""
    changes = body.model_dump(exclude_unset=False)
    blank: dict[str, list[str]] = {f: [BLANK] for f in REQUIRED if not changes[f].strip()}
    if blank:
        raise Invalid(blank)
    return changes
