"""The finishing pass over /openapi.json that makes it generate working clients.

FastAPI's document is close but not enough for client generators (openapi-python-client,
openapi-typescript) or for a person in Swagger UI: operation ids are derived from paths, the
lenient string parameters hide that pages are numbers, and answers the routes build
themselves (errors, headers) are not described. Each contract states what its own routes
need in a `DocumentPart` (its package's `openapi.py`); this module only applies the parts.
Nothing here changes what the service does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request

from app import errors
from app.contracts.routing import Problem, Renderer, problem_from
from app.db.database import UNAVAILABLE

Operation = tuple[str, str]  # (method, path template) as the document spells them
Answer = tuple[str, str, str]  # (method, path template, status)


def header(description: str, *, required: bool = False) -> dict[str, Any]:
    """A documented response header (a string)."""
    return {"description": description, "required": required, "schema": {"type": "string"}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


BLANK = {"type": "string", "maxLength": 0}  # a blank value, read as "none"
REQUEST_ID = header("This request's id (the caller's own X-Request-ID when it sent one)")


@dataclass(frozen=True)
class DocumentContext:
    """What the parts may need to know of the application they describe."""

    # The staff scope each operation needs, where a staff token is accepted.
    staff_scopes: Mapping[Operation, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentPart:
    """What one contract states about its operations beyond FastAPI's own document."""

    tags: tuple[str, ...] = ()
    # Chosen, stable operation ids: generated clients name their functions after them, so
    # they must not change when a route's Python function or path spelling does.
    operation_ids: Mapping[Operation, str] = field(default_factory=dict)
    # The success answer's body, for routes whose models carry no example.
    examples: Mapping[Operation, Any] = field(default_factory=dict)
    headers: Mapping[Answer, Mapping[str, Any]] = field(default_factory=dict)
    # Parameters a contract parses leniently from text, documented as what they are.
    parameters: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    # String formats of what the service answers: component → property → format.
    formats: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # What it reads: component → property → (format, the other spelling it accepts too), so
    # that a schema-valid value is never refused for its shape.
    input_formats: Mapping[str, Mapping[str, tuple[str, Mapping[str, Any]]]] = field(
        default_factory=dict
    )
    components: Mapping[str, Any] = field(default_factory=dict)
    # Component examples as written (FastAPI's document leaves out their null values).
    component_examples: Mapping[str, Any] = field(default_factory=dict)
    # The body of an error answer without one: by status, else "default".
    error_schemas: Mapping[str, str] = field(default_factory=dict)
    # Each documented error shows its own example: the one stated here, else the body the
    # contract's renderer really writes for a typical cause of that status on that route.
    answer_examples: Mapping[Answer, Any] = field(default_factory=dict)
    render: Renderer | None = None
    sample_error: Callable[[str, str, int], Exception | Problem | None] | None = None
    adjust: Callable[[dict[str, Any], DocumentContext], None] | None = None


def examples_of(*models: type[BaseModel]) -> dict[str, Any]:
    """Each model's own example (`json_schema_extra`), by component name."""
    found: dict[str, Any] = {}
    for model in models:
        extra = model.model_config.get("json_schema_extra")
        if isinstance(extra, dict) and "example" in extra:
            found[model.__name__] = extra["example"]
    return found


def _input_format(prop: dict[str, Any], fmt: str, other: Mapping[str, Any]) -> dict[str, Any]:
    """`{format} | other spelling` (| null where the property was nullable)."""
    keep = {k: v for k, v in prop.items() if k in ("title", "description")}
    nullable = any(b.get("type") == "null" for b in prop.get("anyOf", []))
    branches = [{"type": "string", "format": fmt}, dict(other)]
    if nullable:
        branches.append({"type": "null"})
    return {**keep, "anyOf": branches}


def _set_format(prop: dict[str, Any], fmt: str) -> None:
    for branch in prop.get("anyOf", []) or [prop]:
        if branch.get("type") == "string" or (
            isinstance(branch.get("type"), list) and "string" in branch["type"]
        ):
            branch["format"] = fmt


def _json_first(content: dict[str, Any]) -> dict[str, Any]:
    """JSON before HTML: generators parse a response by its first media type."""
    ordered = sorted(content.items(), key=lambda kv: 0 if kv[0] == "application/json" else 1)
    return dict(ordered)


def _has_example(operation: dict[str, Any], components: dict[str, Any]) -> bool:
    """An example of the success answer; none is needed where it has no body (HEAD, 204)."""
    success = [a for s, a in operation.get("responses", {}).items() if s.startswith("2")]
    if all(not answer.get("content") for answer in success):
        return True
    for answer in success:
        for media in answer.get("content", {}).values():
            if "example" in media or "examples" in media:
                return True
            name = media.get("schema", {}).get("$ref", "")
            if "example" in components.get(name.rsplit("/", 1)[-1], {}):
                return True
    return False


EXAMPLE_ULID = "01HWJ8WH9X8WBK65EMGY9YKPBS"


def example_path(path: str) -> str:
    """A concrete path for an example (every template parameter filled in)."""
    for name in ("customer_ulid", "customer_id"):
        path = path.replace("{" + name + "}", EXAMPLE_ULID)
    return path.replace("{loyalty_id}", "3").replace("{token}", "Zt1l8wYq2cQ")


# The usual cause of each status on any route, for the contracts' examples.
TYPICAL_ERRORS: dict[int, Exception | Problem] = {
    400: Problem(400, "Invalid Host header: this host is not served here."),
    401: errors.Unauthenticated(),
    403: errors.Forbidden("You do not have permission to perform this action."),
    409: errors.Conflict("A request with this Idempotency-Key is still being processed."),
    412: errors.PreconditionFailed(),
    413: errors.PayloadTooLarge("Request body is larger than 1048576 bytes."),
    422: errors.Unprocessable("This Idempotency-Key was already used with another request body."),
    429: Problem(
        429,
        "Too many live Idempotency-Keys for this caller; retry later.",
        headers={"Retry-After": "60"},
    ),
    500: RuntimeError("unexpected"),
    503: errors.Unavailable(UNAVAILABLE),
}


def rendered_error(render: Renderer, method: str, path: str, exc: Exception | Problem) -> Any:
    """The JSON body `render` writes for `exc` on a request to `path`."""
    concrete = example_path(path)
    scope = {
        "type": "http",
        "method": method.upper(),
        "path": concrete,
        "raw_path": concrete.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "path_params": {},
    }
    problem = exc if isinstance(exc, Problem) else problem_from(exc)
    response = render(Request(scope), problem)
    return orjson.loads(bytes(response.body))


def _error_example(part: DocumentPart, method: str, path: str, status: str) -> Any | None:
    stated = part.answer_examples.get((method, path, status))
    if stated is not None or part.render is None or part.sample_error is None:
        return stated
    exc = part.sample_error(method, path, int(status)) if status.isdigit() else None
    return None if exc is None else rendered_error(part.render, method, path, exc)


def _answers(part: DocumentPart | None, method: str, path: str, operation: dict[str, Any]) -> None:
    """Bodies, headers and examples of every answer of one operation."""
    for status, answer in operation.get("responses", {}).items():
        if "content" in answer:
            answer["content"] = _json_first(answer["content"])
        own_body = bool(answer.get("content"))
        if part is not None and status >= "400" and method != "head" and not own_body:
            error = part.error_schemas.get(status) or part.error_schemas.get("default")
            if error:
                answer["content"] = {"application/json": {"schema": ref(error)}}
        headers = answer.setdefault("headers", {})
        if part is not None:
            headers.update(part.headers.get((method, path, status), {}))
        if status == "401":
            headers["WWW-Authenticate"] = header("The scheme to authenticate with")
        if status == "503":
            headers["Retry-After"] = header("Seconds to wait before trying again")
        headers["X-Request-ID"] = REQUEST_ID
        media = answer.get("content", {}).get("application/json")
        if part is not None and status >= "400" and media is not None:
            if "example" not in media and "examples" not in media:
                example = _error_example(part, method, path, status)
                if example is not None:
                    media["example"] = example
    example = part.examples.get((method, path)) if part is not None else None
    if example is not None:
        for status, answer in operation["responses"].items():
            if status.startswith("2") and answer.get("content"):
                next(iter(answer["content"].values()))["example"] = example
                break


def _parameters(part: DocumentPart, path: str, operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        stated = part.parameters.get((path, parameter["name"]))
        if stated is not None:
            keep = {k: parameter["schema"][k] for k in ("title",) if k in parameter["schema"]}
            parameter["schema"] = {**keep, **stated}


def finish(
    schema: dict[str, Any],
    parts: Sequence[DocumentPart],
    context: DocumentContext | None = None,
) -> dict[str, Any]:
    """Apply every part to FastAPI's document (in place) and return it."""
    context = context or DocumentContext()
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    for part in parts:
        components.update(deepcopy(dict(part.components)))
    for part in parts:
        for name, example in part.component_examples.items():
            if name in components:
                components[name]["example"] = deepcopy(example)
    for part in parts:
        if part.adjust is not None:
            part.adjust(schema, context)
    for part in parts:
        for name, formats in part.formats.items():
            for prop, fmt in formats.items():
                target = components.get(name, {}).get("properties", {}).get(prop)
                if target is not None:
                    _set_format(target, fmt)
        for name, others in part.input_formats.items():
            properties = components.get(name, {}).get("properties", {})
            for prop, (fmt, other) in others.items():
                if prop in properties:
                    properties[prop] = _input_format(properties[prop], fmt, other)
    by_tag = {tag: part for part in parts for tag in part.tags}
    ids = operation_ids(parts)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            operation["operationId"] = ids.get((method, path), operation.get("operationId"))
            owner = by_tag.get((operation.get("tags") or [""])[0])
            if owner is not None:
                _parameters(owner, path, operation)
            if method == "head":
                for answer in operation.get("responses", {}).values():
                    answer.pop("content", None)  # HEAD answers no body
            _answers(owner, method, path, operation)
    return schema


def operation_ids(parts: Sequence[DocumentPart]) -> dict[Operation, str]:
    """Every chosen operation id of these parts."""
    return {key: name for part in parts for key, name in part.operation_ids.items()}


def operations_without_example(schema: dict[str, Any]) -> list[str]:
    """`METHOD path` of every operation whose answers show no example (tests use this)."""
    components = schema.get("components", {}).get("schemas", {})
    return [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if not _has_example(operation, components)
    ]
