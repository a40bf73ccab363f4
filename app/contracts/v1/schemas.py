"""Request and response schemas of the v1 customer contract, and its error responses."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictStr

ADDRESS_EXAMPLE: dict[str, JsonValue] = {
    "addressLine1": "1 Jessie street",
    "addressLine2": None,
    "city": "Sydney",
    "state": "NSW",
    "postCode": "2145",
    "country": "Australia",
}
CUSTOMER_EXAMPLE: dict[str, JsonValue] = {
    "customerId": "01HWJ8WH9X8WBK65EMGY9YKPBS",
    "firstName": "Fraser",
    "lastName": "Brendand",
    "middleName": None,
    "email": "fraser@example.org",
    "phoneNumber": "+61412345678",
    "nationality": "AU",
    "dob": "1985-04-12",
    "gender": None,
    "address": ADDRESS_EXAMPLE,
    "lastUpdated": "2017-12-03T10:15:30+00:00",
}


class V1Address(BaseModel):
    addressLine1: str | None
    addressLine2: str | None
    city: str | None
    state: str | None
    postCode: str | None
    country: str | None


class V1Customer(BaseModel):
    """A customer as this contract shows it."""

    model_config = ConfigDict(json_schema_extra={"example": CUSTOMER_EXAMPLE})

    customerId: str = Field(description="The customer's ULID")
    firstName: str
    lastName: str
    middleName: str | None
    email: str | None
    phoneNumber: str | None = Field(description="E.164")
    nationality: str | None = Field(description="ISO 3166-1 alpha-2")
    dob: str | None = Field(description="YYYY-MM-DD")
    gender: str | None
    address: V1Address
    lastUpdated: str = Field(description="ISO 8601 with offset")


class V1CustomerEnvelope(BaseModel):
    success: bool = Field(examples=[True])
    status: int = Field(examples=[201])
    data: V1Customer


class V1CustomerPage(BaseModel):
    pageSize: int
    pageNo: int
    totalPages: int
    first: bool
    last: bool
    totalElements: int
    customers: list[V1Customer]


class V1PageEnvelope(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "success": True,
                "status": 200,
                "data": {
                    "pageSize": 1,
                    "pageNo": 0,
                    "totalPages": 1118,
                    "first": True,
                    "last": False,
                    "totalElements": 1118,
                    "customers": [CUSTOMER_EXAMPLE],
                },
            }
        }
    )

    success: bool
    status: int
    data: V1CustomerPage


class V1ErrorData(BaseModel):
    error: str | list[str] = Field(description="The seed's message, or a 400's list of them")
    request: str
    method: str
    fields: dict[str, list[str]] | None = Field(
        None,
        description="Added to the seed's envelope: the messages about each field, by its v1 "
        "name (`address.city` for a part of the address), for a form to show beside it: "
        '`{"firstName": ["Must be between 1 and 30 characters"]}`. On every 400 (empty when '
        "only the body as a whole is wrong) and on a 409 about a field.",
    )


class V1ErrorEnvelope(BaseModel):
    """Every error but 401; each documented answer shows its own example."""

    success: bool
    status: int
    data: V1ErrorData


class V1Unauthorized(BaseModel):
    detail: str = Field(examples=["Invalid token."])


class V1AddressIn(BaseModel):
    """Address parts; on PATCH only the parts sent change (`null` clears one)."""

    model_config = ConfigDict(extra="ignore")

    addressLine1: StrictStr | None = None
    addressLine2: StrictStr | None = None
    city: StrictStr | None = None
    state: StrictStr | None = None
    postCode: StrictStr | None = None
    country: StrictStr | None = None


class V1CustomerIn(BaseModel):
    """Writable fields; read-only ones echoed back (customerId, lastUpdated) are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "example": {
                "firstName": "Fraser",
                "lastName": "Brendand",
                "address": {
                    "addressLine1": "1 Jessie street",
                    "addressLine2": "",
                    "city": "Sydney",
                    "state": "NSW",
                    "postCode": "2145",
                    "country": "Australia",
                },
            }
        },
    )

    firstName: StrictStr | None = None
    lastName: StrictStr | None = None
    middleName: StrictStr | None = None
    email: StrictStr | None = None
    phoneNumber: StrictStr | None = None
    nationality: StrictStr | None = Field(None, description="alpha-2, alpha-3 or English name")
    dob: StrictStr | None = Field(None, description="YYYY-MM-DD")
    gender: StrictStr | None = None
    address: V1AddressIn | None = None


def envelope_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Invalid input: `error` lists every problem",
        403: "Not a staff token with the needed scope",
        404: "No such customer",
        409: "The email address is already used by another customer (POST: or a request "
        "with this Idempotency-Key is still running)",
        412: "`If-Match` does not match the current ETag; nothing was changed",
        413: "Body over the size limit",
        422: "This Idempotency-Key was used with another request body",
        500: "Unexpected error",
    }
    out: dict[int | str, dict[str, Any]] = {
        401: {"model": V1Unauthorized, "description": "Missing, bad or expired access token"}
    }
    for status in (*statuses, 403, 500):
        out[status] = {"model": V1ErrorEnvelope, "description": described[status]}
    return out
