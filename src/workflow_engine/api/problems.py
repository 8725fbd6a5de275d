"""Every error becomes ``application/problem+json`` (RFC 9457), here and nowhere else."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from ..errors import (
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
    UnsupportedMediaType,
    WorkflowError,
)

__all__ = ["PROBLEM_JSON", "problem_response", "register_error_handlers"]

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:workflow-engine:problem:"

log = logging.getLogger(__name__)


def problem_response(
    status: int, code: str, title: str, detail: str, **extra: Any
) -> Response:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        "code": code,
    }
    # Context never overrides the members RFC 9457 defines.
    body.update({key: value for key, value in extra.items()
                 if value is not None and key not in body})
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)


def _from_workflow_error(error: WorkflowError) -> Response:
    errors = [problem.as_dict() for problem in error.errors] or None
    response = problem_response(
        error.status, error.code, error.title, error.detail, errors=errors, **error.context
    )
    response.headers.update(error.headers)
    return response


_HTTP_ERRORS: dict[int, type[WorkflowError]] = {
    400: InvalidRequest,
    404: RouteNotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def _from_http_exception(error: HTTPException) -> Response:
    """Werkzeug's own errors (no such route, wrong method, body too large, bad range...)."""
    status = error.code or 500
    kind = _HTTP_ERRORS.get(status)
    if kind is not None:
        detail = {
            404: f"No endpoint answers at {request.path}.",
            405: f"{request.method} is not allowed on {request.path}.",
            413: "The request body is larger than the server accepts.",
        }.get(status, error.description or error.name)
        response = _from_workflow_error(kind(detail))
    else:
        code = re.sub(r"[^a-z0-9]+", "_", error.name.lower()).strip("_")
        response = problem_response(status, code, error.name, error.description or error.name)
    # Keep what Werkzeug says in headers: Allow on a 405, Content-Range on a 416.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _from_unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem_response(
        500, "internal_error", "Internal server error",
        "The server failed to handle this request; it has been logged.",
    )


def register_error_handlers(app: Flask) -> None:
    """Route every error raised while handling a request through the problem builders."""
    app.register_error_handler(WorkflowError, _from_workflow_error)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(Exception, _from_unexpected)
