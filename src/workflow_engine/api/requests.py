"""Reading what a client sent: the JSON body, query parameters and our headers."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import strict_json
from ..core.validation import shape_problems
from ..errors import (
    ActorNotAllowed,
    InvalidHeader,
    InvalidParameter,
    PayloadTooLarge,
    Problem,
    UnsupportedMediaType,
    ValidationFailed,
)
from ..service import Position
from .access import current_token

__all__ = [
    "MAX_INT",
    "ListQuery",
    "actor",
    "idempotency_key",
    "if_match",
    "json_body",
    "last_event_id",
    "query",
    "validate_body",
]

Model = TypeVar("Model", bound=BaseModel)

MAX_HEADER_LENGTH = 200
MAX_INT = 2**31 - 1  # what every database's INTEGER holds
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Printable characters only: control characters (C0 and C1) in a stored actor or key
# would end up in logs and responses.
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f-\x9f]+$")


def json_body() -> Any:
    """The body parsed as JSON.

    415 unless sent as JSON, 413 past the size limit (Flask enforces
    ``MAX_CONTENT_LENGTH`` when the body is read), 400 ``malformed_json`` unless it is
    strict JSON (:func:`workflow_engine.strict_json.loads`: UTF-8, finite numbers, each
    name once per object).
    """
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Send the body as application/json (got {request.mimetype or 'no Content-Type'})."
        )
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # A chunked body has no Content-Length for Flask to check up front, and the
        # stream it reads stops at the limit without a word: refuse rather than truncate.
        raise PayloadTooLarge("The request body is larger than the server accepts.")
    return strict_json.loads(data)


def validate_body(model: type[Model], document: Any) -> Model:
    """``document`` validated against ``model``; 422 with every problem if it does not fit."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = shape_problems(exc, model)
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
        problems = shape_problems(exc, model)
        raise InvalidParameter(
            "; ".join(f"{p.path}: {p.message}" for p in problems), errors=problems
        ) from exc


def _header(name: str) -> str | None:
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        # WSGI hands headers over as Latin-1; clients send UTF-8.
        value = value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise InvalidHeader(
            f"{name} is not valid UTF-8.",
            errors=[Problem(name, "invalid_header", "Not valid UTF-8.")],
        ) from None
    if len(value) > MAX_HEADER_LENGTH or not _PRINTABLE.match(value):
        raise InvalidHeader(
            f"{name} must be 1 to {MAX_HEADER_LENGTH} printable characters.",
            errors=[Problem(name, "invalid_header", "Empty, too long or not printable.")],
        )
    return value


def actor() -> str | None:
    """Who is acting: the token's name when tokens are configured (refined by ``X-Actor``
    for tokens allowed to), else ``X-Actor``."""
    claimed = _header("X-Actor")
    token = current_token()
    if token is None:
        return claimed
    if claimed is None:
        return token.name
    if not token.may_set_actor:
        raise ActorNotAllowed(
            f"Token '{token.name}' may not set X-Actor; its actions are recorded as its own."
        )
    return f"{token.name}/{claimed}"


def idempotency_key() -> str | None:
    """The ``Idempotency-Key`` header."""
    return _header("Idempotency-Key")


def if_match() -> str | None:
    """The ``If-Match`` header, as sent."""
    return _header("If-Match")


def last_event_id(after: str | None = None) -> Position | None:
    """Where an event stream resumes: ``Last-Event-ID`` (an EventSource sends it when it
    reconnects, to the same URL, so it wins over the URL's ``after``), else ``after``;
    None when neither is given (or either is empty)."""
    header = (request.headers.get("Last-Event-ID") or "").strip()
    if header:
        return Position.parse(header, source="Last-Event-ID")
    if after is not None and after.strip():
        return Position.parse(after.strip(), source="after")
    return None
