"""Domain errors. They carry no HTTP: each contract maps them to its own format."""


class DomainError(Exception):
    """Base of every error the service layer raises on purpose."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The record does not exist (or the caller may not know that it does)."""


class Conflict(DomainError):
    """The write would break a uniqueness rule, e.g. a duplicate e-mail address."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PreconditionFailed(DomainError):
    """An If-Match precondition no longer holds: somebody else changed the record."""


class Invalid(DomainError):
    """Input broke a rule; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class Unavailable(DomainError):
    """A dependency (mail server, database) cannot be reached right now."""


class Unauthenticated(DomainError):
    """No credentials, or credentials that do not verify."""

    def __init__(self, message: str = "", *, invalid_token: bool = False) -> None:
        super().__init__(message)
        self.invalid_token = invalid_token


class Forbidden(DomainError):
    """Authenticated, but not allowed to do this."""


class PayloadTooLarge(DomainError):
    """The request body is over the configured limit."""


class Unprocessable(DomainError):
    """Well-formed, but cannot be processed as sent (e.g. a reused Idempotency-Key)."""
