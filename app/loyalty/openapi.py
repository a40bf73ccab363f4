"""OpenAPI documentation of the loyalty register (the router renders plain dicts)."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.loyalty.schemas import PARSES


class LoyaltyMemberIn(BaseModel):
    """One member as POSTed or PUT (upsert key: loyalty_id)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "loyalty_id": "3",
                "cardno": "33",
                "discount": "15",
                "client_name": "Mariya",
                "client_birthday": "1982-11-17",
                "is_male": False,
            }
        }
    )

    loyalty_id: str = Field(max_length=50)
    cardno: str | None = Field(None, max_length=20)
    discount: str | None = Field(None, description="Decimal, at most 4 places")
    client_name: str = Field(max_length=200)
    client_birthday: str = Field(description="YYYY-MM-DD, YYYY-MM, YYYY or M/D/YYYY")
    is_male: bool | None = None


class LoyaltyMemberOut(BaseModel):
    """One member as the register shows it."""

    url: str = Field(examples=["http://localhost:8000/api/v1/loyalty/3/"])
    loyalty_id: str = Field(examples=["3"])
    cardno: str | None = Field(examples=["33"])
    discount: str | None = Field(examples=["15.00"])
    client_name: str | None = Field(examples=["Mariya"])
    client_birthday: str | None = Field(examples=["1982-11-17T00:00:00"])
    is_male: bool | None = Field(examples=[False])


class LoyaltyPage(BaseModel):
    count: int = Field(examples=[3])
    next: str | None = Field(examples=["http://localhost:8000/api/v1/loyalty/?page=2"])
    previous: str | None = Field(examples=[None])
    results: list[LoyaltyMemberOut]


class UpsertResult(BaseModel):
    updated: int = Field(examples=[1])
    inserted: int = Field(examples=[2])


class Detail(BaseModel):
    detail: str = Field(examples=["Not found"])


class Metadata(BaseModel):
    name: str = Field(examples=["Loyalty List"])
    description: str = Field(examples=["Loyalty"])
    renders: list[str]
    parses: list[str]
    actions: dict[str, dict[str, dict[str, Any]]]


ITEM_SCHEMA = LoyaltyMemberIn.model_json_schema()
BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        ITEM_SCHEMA,
                        {"type": "array", "items": ITEM_SCHEMA, "maxItems": 10_000},
                    ]
                }
            },
            **{t: {"schema": ITEM_SCHEMA} for t in PARSES[1:]},
        },
    }
}
ITEM_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {t: {"schema": ITEM_SCHEMA} for t in PARSES},
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Detail, "description": "Missing or invalid bearer token"},
    403: {"model": Detail, "description": "Not a staff token with the loyalty scope"},
    404: {"model": Detail, "description": "No such member, invalid page or unknown format"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"description": "Field errors: `{field: [message]}`, or a list of them for a bulk"},
    413: {"model": Detail, "description": "Body over the size limit"},
    415: {"model": Detail, "description": "Body in an unsupported media type"},
}
