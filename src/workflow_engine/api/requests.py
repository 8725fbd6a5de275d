"""Reading what a client sent: the JSON body, query parameters and our headers."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.validation import shape_problems
from ..errors import (
    InvalidHeader,
    InvalidParameter,
    MalformedJSON,
    Problem,
    UnsupportedMediaType,
    ValidationFailed,
)

__all__ = [
    "ListQuery",
    "actor",
    "idempotency_key",
    "if_match",
    "json_body",
    "query",
    "validate_body",
]

Model = TypeVar("Model", bound=BaseModel)

MAX_HEADER_LENGTH = 200
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Printable characters only: control characters in a stored actor or key would end up in
# logs and responses.
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")


def json_body() -> Any:
    """The body parsed as JSON.

    415 unless sent as JSON, 400 if it does not parse, 413 past the size limit (Flask
    enforces ``MAX_CONTENT_LENGTH`` when the body is read).
    """
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Send the body as application/json (got {request.mimetype or 'no Content-Type'})."
        )
    data = request.get_data(cache=True)
    if not data.strip():
        raise MalformedJSON("The request body is empty; a JSON document is required.")
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise MalformedJSON("The request body is not valid UTF-8.") from exc
    except json.JSONDecodeError as exc:
        raise MalformedJSON(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            line=exc.lineno, column=exc.colno,
        ) from exc
    except RecursionError as exc:
        raise MalformedJSON("The body is nested too deeply.") from exc


def validate_body(model: type[Model], document: Any) -> Model:
    """``document`` validated against ``model``; 422 with every problem if it does not fit."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = shape_problems(exc)
        raise ValidationFailed(
            f"The body has {len(problems)} problem{'s' if len(problems) != 1 else ''}.",
            errors=problems,
        ) from exc


class QueryModel(BaseModel):
    """Base of query-string models: unknown parameters are refused, values coerced."""

    model_config = ConfigDict(extra="forbid")


class ListQuery(QueryModel):
    """Pagination parameters shared by every listing."""

    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    cursor: str | None = Field(
        None, max_length=512, description="next_cursor of the previous page."
    )


def query(model: type[Model]) -> Model:
    """The query string validated against ``model``; 400 naming each bad parameter."""
    raw = {key: values[-1] for key, values in request.args.lists()}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = shape_problems(exc)
        raise InvalidParameter(
            "; ".join(f"{p.path}: {p.message}" for p in problems), errors=problems
        ) from exc


def _header(name: str) -> str | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if len(value) > MAX_HEADER_LENGTH or not _PRINTABLE.match(value):
        raise InvalidHeader(
            f"{name} must be 1 to {MAX_HEADER_LENGTH} printable characters.",
            errors=[Problem(name, "invalid_header", "Empty, too long or not printable.")],
        )
    return value


def actor() -> str | None:
    """Who is acting, from ``X-Actor``."""
    return _header("X-Actor")


def idempotency_key() -> str | None:
    """The ``Idempotency-Key`` header."""
    return _header("Idempotency-Key")


def if_match() -> str | None:
    """The ``If-Match`` header, as sent."""
    return _header("If-Match")
