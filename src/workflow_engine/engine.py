"""The engine without its HTTP front: store, blocks, service, enrichment and runner, wired
once from the settings. The application factory serves it; the worker command runs its
blocks."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .blocks import Catalog
from .metrics import Metrics
from .outbound import AddressPolicy, HttpCalls
from .runner import Runner
from .service import Blocks, Files, Tables, WorkflowService, now_ms
from .settings import Settings
from .sixtyfour import Enrichment
from .snapshots import Snapshots
from .storage import open_areas
from .store import Store, make_engine
from .tasks import TaskQueue

__all__ = ["Engine", "build_engine"]


@dataclass(frozen=True)
class Engine:
    """Everything that runs workflows, for one process."""

    settings: Settings
    store: Store
    service: WorkflowService
    runner: Runner
    files: Files
    tables: Tables
    blocks: Blocks
    metrics: Metrics
    webhook_secret: str

    def close(self, *, wait: bool = True) -> None:
        """Stop the runner (running blocks stop where they are) and the database pool."""
        self.runner.close(wait=wait)
        self.store.dispose()


def build_engine(settings: Settings, *, clock: Callable[[], int] = now_ms,
                 worker: str | None = None) -> Engine:
    """Open the store (its schema migrated to the latest), load the shipped definitions
    and build the runner: the server's threads or the task queue, as configured.

    ``worker`` names this process in the block runs it holds (see
    ``Settings.worker_name``)."""
    # Counts instances through the service built below; the service tells it of changes.
    metrics = Metrics(lambda: service.counts()["instances"])
    store = Store(make_engine(
        settings.database_url, synchronous=settings.sqlite_synchronous,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    ))
    try:
        store.create_schema()
        areas = open_areas(settings)
        catalog = Catalog(areas.files, limits=settings.limits,
                          secrets=settings.http_secrets.keys())
        service = WorkflowService(
            store, clock=clock, catalog=catalog, files=areas.files, limits=settings.limits,
            on_commit=lambda instance, events: metrics.observe_events(
                instance.definition_id, events),
        )
        if settings.definitions_dir is not None:
            service.load_directory(settings.definitions_dir)
    except Exception:
        store.dispose()
        raise
    webhook_secret = settings.webhook_secret or secrets.token_urlsafe(24)
    enrichment = Enrichment(
        store, metrics, api_key=settings.sixtyfour_api_key,
        base_url=settings.sixtyfour_base_url,
        rate_per_minute=settings.sixtyfour_rate_per_minute,
        webhook_url=f"{settings.public_url.rstrip('/')}/api/webhooks/sixtyfour/{webhook_secret}"
        if settings.public_url else None,
    )
    worker = worker or settings.worker_name
    snapshots = Snapshots(areas.snapshots)
    runner = Runner(
        service, catalog, snapshots, areas.outputs,
        workers=settings.block_workers, enrichment=enrichment,
        http=HttpCalls(store, secrets=settings.http_secrets, policy=AddressPolicy(
            allow_private=settings.http_allow_private,
            networks=tuple(settings.http_networks)),
            max_answer_bytes=settings.http_max_answer_bytes),
        queue=TaskQueue(settings.database_url)
        if settings.task_engine == "procrastinate" else None,
        lease_seconds=settings.block_lease_seconds,
        heartbeat_seconds=settings.block_heartbeat_seconds, worker=worker,
    )
    return Engine(
        settings, store, service, runner,
        Files(areas.files, areas.outputs, limits=settings.limits),
        Tables(service, catalog, snapshots, enrichment=enrichment),
        Blocks(service, catalog, enrichment=enrichment),
        metrics, webhook_secret,
    )
