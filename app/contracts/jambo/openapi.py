"""What the Jambo contract states in /openapi.json beyond FastAPI's own document."""

from app import errors
from app.contracts.jambo.router import render
from app.contracts.openapi import BLANK, TYPICAL_ERRORS, DocumentPart
from app.contracts.routing import Problem
from app.errors import Message

_CUSTOMER = {
    "ulid": "01HWJ8WH9X8WBK65EMGY9YKPBS",
    "first_name": "Cynthia",
    "last_name": "Norris",
    "middle_name": None,
    "nationality": "Lesotho",
    "dob": "1985-09-06",
    "email": "cynthia@example.org",
    "phone_number": "+254712345678",
}
_DELETED = {"statusCode": 200, "body": "Customer deleted successfully"}
_NO_TOKEN = {"detail": "No Token matches the given query."}
_CONFIRM = "/api/customer/{token}/delete/confirm"
_REQUEST = "/api/customer/{customer_ulid}/delete/request"
_WRITES = ("post", "put")


def _sample_error(method: str, path: str, status: int) -> Exception | Problem | None:
    """A typical cause of each documented error, as this contract's routes meet it."""
    writes_customer = method in _WRITES and "/delete/" not in path
    if status == 400 and writes_customer:
        return errors.Invalid({"email": [Message("Enter a valid email address.", "invalid_email")]})
    if status == 409 and writes_customer:
        return errors.Conflict("A customer with this email already exists.", "email")
    if status == 404:
        return errors.NotFound("Customer not found.")
    return TYPICAL_ERRORS.get(status)


PART = DocumentPart(
    tags=("Jambo customers",),
    operation_ids={
        ("post", "/api/customers"): "jambo_create_customer",
        ("get", "/api/customers"): "jambo_list_customers",
        ("put", "/api/customers"): "jambo_update_own_customer",
        ("get", "/api/customer/{customer_ulid}"): "jambo_get_customer",
        ("get", "/api/customer/{customer_ulid}/export"): "jambo_export_customer",
        ("put", "/api/customer/{customer_ulid}"): "jambo_update_customer",
        ("delete", "/api/customer/{customer_ulid}"): "jambo_delete_customer",
        ("post", _REQUEST): "jambo_request_deletion",
        ("get", _CONFIRM): "jambo_confirm_deletion_link",
        ("post", _CONFIRM): "jambo_confirm_deletion",
    },
    examples={
        ("post", "/api/customers"): {"statusCode": 201, "body": _CUSTOMER},
        ("get", "/api/customers"): {
            "count": 1,
            "next": None,
            "previous": None,
            "results": {"statusCode": 200, "body": [_CUSTOMER]},
        },
        ("put", "/api/customers"): {"statusCode": 200, "body": _CUSTOMER},
        ("get", "/api/customer/{customer_ulid}"): {"statusCode": 200, "body": _CUSTOMER},
        ("put", "/api/customer/{customer_ulid}"): {"statusCode": 200, "body": _CUSTOMER},
        ("delete", "/api/customer/{customer_ulid}"): {"statusCode": 204},
        ("post", _REQUEST): {"statusCode": 200, "body": "Data deletion link sent successfully"},
        ("get", _CONFIRM): _DELETED,
        ("post", _CONFIRM): _DELETED,
    },
    answer_examples={
        ("get", "/api/customers", "404"): {"detail": "Invalid page."},
        ("post", _REQUEST, "400"): {"statusCode": 400, "body": "Customer Not Found or is Invalid"},
        ("get", _CONFIRM, "404"): _NO_TOKEN,
        ("post", _CONFIRM, "404"): _NO_TOKEN,
    },
    parameters={
        ("/api/customers", "page"): {"type": "integer", "minimum": 1},
        ("/api/customers", "page_size"): {"type": "integer", "minimum": 1},
    },
    formats={
        "CustomerOut": {"dob": "date", "email": "email"},
        # The export (this contract's and v3's): the same document, store names.
        "CustomerExport": {"exported_at": "date-time"},
        "ExportedCustomer": {"dob": "date", "created_at": "date-time", "updated_at": "date-time"},
        "ExportedMembership": {"client_birthday": "date"},
        "ExportedAuditLine": {"at": "date-time"},
    },
    input_formats={"CustomerIn": {"dob": ("date", BLANK), "email": ("email", BLANK)}},
    error_schemas={"default": "MessageEnvelope"},
    render=render,
    sample_error=_sample_error,
)
