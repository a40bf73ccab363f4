"""Domain errors. They carry no HTTP: each contract maps them to its own format."""


class Message(str):
    """A message fit to show a client, with a stable `code` (and the rule's parameters): the
    text is the core's default wording; a contract that words it otherwise goes by the code
    (`required`, `blank`, `too_long`, `invalid_email`, …), never by the English text."""

    code: str
    params: dict[str, object]

    def __new__(cls, text: str, code: str = "invalid", **params: object) -> "Message":
        message = super().__new__(cls, text)
        message.code = code
        message.params = params
        return message


def code_of(message: str) -> str:
    """The code of a message (`invalid` for plain text)."""
    return message.code if isinstance(message, Message) else "invalid"


class FieldError(ValueError):
    """One value failed one rule; `message` says which, with its code."""

    def __init__(self, text: str, code: str = "invalid", **params: object) -> None:
        super().__init__(text)
        self.message = Message(text, code, **params)


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


class TooManyRequests(DomainError):
    """The caller is over a limit that time will lift (e.g. its live Idempotency-Keys)."""
