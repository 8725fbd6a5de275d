"""The application factory."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from flask import Flask
from flask_cors import CORS

from .api import (
    EXTENSION,
    RUNNER,
    access,
    blocks,
    data,
    definitions,
    files,
    health,
    instances,
    observability,
    openapi,
    webhooks,
)
from .api.problems import register_error_handlers
from .auth import TokenRegistry
from .blocks import Catalog
from .files import FileArea
from .metrics import Metrics
from .runner import Runner
from .service import WorkflowService, now_ms
from .settings import Settings
from .sixtyfour import Enrichment
from .snapshots import Snapshots
from .store import Store, make_engine

__all__ = ["create_app"]

EXPOSED_HEADERS = ["ETag", "Location", "Idempotent-Replayed"]
ALLOWED_HEADERS = ["Content-Type", "If-Match", "Idempotency-Key", "X-Actor", "Authorization"]


def create_app(settings: Settings | None = None, *, clock: Callable[[], int] = now_ms) -> Flask:
    """Build the application: store (schema migrated to the latest), shipped definitions,
    routes.

    ``settings`` defaults to what the environment says; tests pass their own.
    """
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]

    store = Store(make_engine(
        settings.database_url, synchronous=settings.sqlite_synchronous,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    ))
    store.create_schema()
    samples = FileArea(settings.samples_dir, "samples") if settings.samples_dir else None
    inputs = FileArea(settings.files_dir, "files", fallback=samples)
    outputs = FileArea(settings.outputs_dir, "outputs")
    for directory in (settings.files_dir, settings.outputs_dir, settings.snapshots_dir):
        directory.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(inputs, limits=settings.limits)
    service = WorkflowService(store, clock=clock, catalog=catalog)
    if settings.definitions_dir is not None:
        try:
            service.load_directory(settings.definitions_dir)
        except Exception:
            store.dispose()
            raise
    metrics = Metrics(lambda: service.counts()["instances"])
    service.on_commit = lambda instance, events: metrics.observe_events(
        instance.definition_id, events)
    webhook_secret = settings.webhook_secret or secrets.token_urlsafe(24)
    app.config["WEBHOOK_SECRET"] = webhook_secret
    enrichment = Enrichment(
        store, metrics, api_key=settings.sixtyfour_api_key,
        base_url=settings.sixtyfour_base_url,
        rate_per_minute=settings.sixtyfour_rate_per_minute,
        webhook_url=f"{settings.public_url.rstrip('/')}/api/webhooks/sixtyfour/{webhook_secret}"
        if settings.public_url else None,
    )
    runner = Runner(service, catalog, Snapshots(settings.snapshots_dir), outputs,
                    workers=settings.block_workers, enrichment=enrichment)
    runner.resume()
    app.extensions[EXTENSION] = service
    app.extensions[RUNNER] = runner
    app.config["WORKFLOW_SETTINGS"] = settings

    CORS(app, origins=settings.cors_origin_list, expose_headers=EXPOSED_HEADERS,
         allow_headers=ALLOWED_HEADERS)
    for module in (health, definitions, instances, data, blocks, files, webhooks, openapi):
        app.register_blueprint(module.blueprint)
    # Order matters: the request id and timer come first, so refused requests are logged too.
    observability.install(app, metrics)
    access.install(app, TokenRegistry.load(settings.api_tokens, settings.tokens_file))
    register_error_handlers(app)
    return app
