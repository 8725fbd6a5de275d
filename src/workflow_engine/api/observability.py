"""Request ids, one structured log line per request, and ``/metrics``."""

from __future__ import annotations

import re
import time
import uuid

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..logs import request_log
from ..metrics import Metrics
from .access import current_token

__all__ = ["METRICS", "blueprint", "install"]

METRICS = "workflow_engine.metrics"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

blueprint = Blueprint("observability", __name__)


def _begin() -> None:
    g.started = time.perf_counter()
    offered = request.headers.get("X-Request-ID", "")
    # Keep a caller's id so its logs and ours join up; make one when it sent none (or junk).
    g.request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex


def _finish(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers["X-Request-ID"] = request_id
    route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    metrics: Metrics = current_app.extensions[METRICS]
    metrics.observe_request(route, request.method, response.status_code, seconds)
    token = current_token()
    request_log().info(
        "request", request_id=request_id, method=request.method, route=route,
        # A webhook's path holds its secret: log the route instead.
        path=route if route.startswith("/api/webhooks/") else request.path,
        status=response.status_code, ms=round(seconds * 1000, 2),
        token=token.name if token else None, remote=request.remote_addr,
    )
    return response


@blueprint.get("/metrics")
def get_metrics() -> Response:
    """Prometheus text format."""
    metrics: Metrics = current_app.extensions[METRICS]
    return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)


def install(app: Flask, metrics: Metrics) -> None:
    """Time, log and count every request; serve the metrics."""
    app.extensions[METRICS] = metrics
    app.before_request(_begin)
    app.after_request(_finish)
    app.register_blueprint(blueprint)
