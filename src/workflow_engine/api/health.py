"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, Response

from .. import __version__
from . import service
from .responses import json_response
from .schemas import ApiHealth, Health

__all__ = ["blueprint"]

blueprint = Blueprint("health", __name__)


@blueprint.get("/health")
def health() -> Response:
    """The process is up. Touches nothing else, so it stays cheap for probes."""
    return json_response(Health(status="ok"))


@blueprint.get("/api/health")
def api_health() -> Response:
    """The database answers; what it holds; version and uptime."""
    engine = service()
    counts = engine.counts()
    body = ApiHealth(
        status="ok", database="ok", version=__version__,
        uptime_seconds=round((engine.clock() - engine.started_at) / 1000, 3),
        definitions=counts["definitions"], instances=counts["instances"],
    )
    return json_response(body)
