"""The application factory."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from . import ui
from .api import (
    BLOCKS,
    EXTENSION,
    FILES,
    RUNNER,
    SCHEDULES,
    STREAMS,
    TABLES,
    access,
    blocks,
    cors,
    data,
    definitions,
    files,
    health,
    instances,
    observability,
    openapi,
    triggers,
    webhooks,
)
from .api.problems import register_error_handlers
from .auth import TokenRegistry
from .engine import build_engine
from .schedules import ScheduleLoop
from .service import EventStreams, StreamLimits, now_ms
from .settings import Settings

__all__ = ["create_app"]

EXPOSED_HEADERS = ["ETag", "Location", "Idempotent-Replayed"]
ALLOWED_HEADERS = ["Content-Type", "If-Match", "Idempotency-Key", "X-Actor", "Authorization",
                   "Last-Event-ID", "X-Hook-Token"]


def create_app(settings: Settings | None = None, *, clock: Callable[[], int] = now_ms) -> Flask:
    """Build the application: store (schema migrated to the latest), shipped definitions,
    routes.

    ``settings`` defaults to what the environment says; tests pass their own.
    """
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]

    engine = build_engine(settings, clock=clock)
    engine.runner.resume()
    app.config["WEBHOOK_SECRET"] = engine.webhook_secret
    service, runner, metrics = engine.service, engine.runner, engine.metrics
    app.extensions[EXTENSION] = service
    app.extensions[RUNNER] = runner
    app.extensions[FILES] = engine.files
    app.extensions[TABLES] = engine.tables
    app.extensions[BLOCKS] = engine.blocks
    streams = EventStreams(service, StreamLimits(
        max_streams=settings.max_event_streams,
        poll_seconds=settings.event_stream_poll_seconds,
        heartbeat_seconds=settings.event_stream_heartbeat_seconds,
        max_seconds=settings.event_stream_max_seconds,
    ))
    app.extensions[STREAMS] = streams
    metrics.event_streams.set_function(lambda: streams.open_count)
    app.config["WORKFLOW_SETTINGS"] = settings
    schedules = ScheduleLoop(service, poll_seconds=settings.schedule_poll_seconds)
    app.extensions[SCHEDULES] = schedules
    runner.close_with(schedules.close)

    cors.install(app, origins=settings.cors_origin_list, expose_headers=EXPOSED_HEADERS,
                 allow_headers=ALLOWED_HEADERS)
    for module in (health, access, definitions, instances, data, blocks, files, triggers,
                   webhooks, openapi, ui):
        app.register_blueprint(module.blueprint)
    # Order matters: the request id and timer come first, so refused requests are logged too.
    observability.install(app, metrics)
    access.install(app, TokenRegistry.load(settings.api_tokens, settings.tokens_file))
    register_error_handlers(app)
    if settings.schedules:
        schedules.start()
    return app
