"""Request ids, one structured log line per request, and ``/metrics``."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time
from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..logs import request_log
from ..metrics import Metrics
from .access import current_token

__all__ = ["METRICS", "blueprint", "install", "stream_observer"]

METRICS = "workflow_engine.metrics"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_PROCESS_TAG = ""
_REQUEST_NUMBERS = itertools.count(1)


def _new_process() -> None:
    """Give this process its own request ids. Called at import and again in every child
    of a fork (gunicorn's workers are forked after its master may have imported us):
    a child that kept its parent's tag and counter would hand out the parent's ids."""
    global _PROCESS_TAG, _REQUEST_NUMBERS
    _PROCESS_TAG = secrets.token_hex(11)
    _REQUEST_NUMBERS = itertools.count(1)


_new_process()
os.register_at_fork(after_in_child=_new_process)

blueprint = Blueprint("observability", __name__)


def _new_request_id() -> str:
    """Unique in this process by its counter, across processes by its random prefix:
    as good as a UUID for joining logs, at a fraction of its cost."""
    return f"{_PROCESS_TAG}{next(_REQUEST_NUMBERS):010x}"


def _begin() -> None:
    g.started = time.perf_counter()
    offered = request.environ.get("HTTP_X_REQUEST_ID", "")
    # Keep a caller's id so its logs and ours join up; make one when it sent none (or junk).
    g.request_id = offered if _REQUEST_ID.match(offered) else _new_request_id()


def _finish(response: Response) -> Response:
    here = request._get_current_object()  # type: ignore[attr-defined]
    state = g._get_current_object()
    seconds = time.perf_counter() - getattr(state, "started", time.perf_counter())
    request_id = getattr(state, "request_id", None) or _new_request_id()
    response.headers["X-Request-ID"] = request_id
    rule = here.url_rule
    route = rule.rule if rule is not None else "(unmatched)"
    method, status = here.method, response.status_code
    metrics: Metrics = current_app.extensions[METRICS]
    metrics.observe_request(route, method, status, seconds)
    token = current_token()
    request_log().info(
        "request", request_id=request_id, method=method, route=route,
        # A webhook's path holds its secret: log the route instead.
        path=route if route.startswith("/api/webhooks/") else here.path,
        status=status, ms=round(seconds * 1000, 2),
        token=token.name if token else None, remote=here.remote_addr,
    )
    return response


def stream_observer() -> Callable[[str, int], None]:
    """For a request whose body streams: what to call once the body has ended, with why
    and how many events it sent. The request's own line is logged (and its latency
    counted) when its head is sent; this logs a second line, ``stream ended``, with how
    long the stream lasted, and counts it by reason."""
    metrics: Metrics = current_app.extensions[METRICS]
    request_id = getattr(g, "request_id", None) or _new_request_id()
    path, started = request.path, time.perf_counter()

    def ended(reason: str, events: int) -> None:
        seconds = time.perf_counter() - started
        metrics.event_streams_ended.labels(reason).inc()
        request_log().info("stream ended", request_id=request_id, path=path, reason=reason,
                           events=events, seconds=round(seconds, 3))

    return ended


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
