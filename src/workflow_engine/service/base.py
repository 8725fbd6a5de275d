"""What every part of the service layer shares: the store, the clock, the workflow cache,
and the one way to commit a change the core computed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from ..core import Change, DefinitionSpec, Event, EventType, Instance, InstanceStatus, Workflow
from ..core.dataflow import BlockCatalog
from ..errors import (
    ConcurrentModification,
    DefinitionNotFound,
    DefinitionVersionNotFound,
    InstanceNotFound,
    Problem,
)
from ..limits import DEFAULT_LIMITS, Limits
from ..storage import FileArea
from ..store import Store, StoredDefinition, Transaction
from ..store.block_runs import BlockRuns

__all__ = ["Changes", "Scheduler", "ServiceBase", "now_ms"]


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch, UTC."""
    return time.time_ns() // 1_000_000


class Scheduler(Protocol):
    """Who runs blocks: handed every block run a change starts, in the transaction that
    records it."""

    def enqueue(self, tx: Transaction, instance_id: str, seq: int) -> None:
        """Hand over run ``seq`` of the instance, atomically with ``tx``."""

    def cancel(self, instance_id: str, seq: int) -> None:
        """Run ``seq`` was cancelled (committed): stop it if it runs in this process."""

    def cancel_branch(self, instance_id: str, seq: int, branch: str) -> None:
        """A branch of run ``seq`` was cancelled (committed): stop it if it runs here."""

    def progress(self, instance_id: str, seq: int) -> dict[str, Any] | None:
        """Run ``seq``'s progress, if it runs in this process."""

    def wait(self, instance_id: str, timeout: float) -> None:
        """Return when this process runs nothing of the instance, or after ``timeout``."""


class _Inline:
    """No runner: running blocks wait until one is attached (used by core-only tests)."""

    def enqueue(self, tx: Transaction, instance_id: str, seq: int) -> None:
        """Do nothing: the run stays pending in the store."""

    def cancel(self, instance_id: str, seq: int) -> None:
        """Nothing runs here."""

    def cancel_branch(self, instance_id: str, seq: int, branch: str) -> None:
        """Nothing runs here."""

    def progress(self, instance_id: str, seq: int) -> dict[str, Any] | None:
        """Nothing runs here."""
        return None

    def wait(self, instance_id: str, timeout: float) -> None:
        """Nothing runs here."""


class Changes:
    """Wakes whoever watches an instance in this process when a change to it commits here
    (changes committed by other processes are found by reading the database)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: dict[str, set[threading.Event]] = {}

    @contextmanager
    def watching(self, instance_id: str) -> Iterator[threading.Event]:
        """An event set at every change of the instance committed while the block runs."""
        woken = threading.Event()
        with self._lock:
            self._watchers.setdefault(instance_id, set()).add(woken)
        try:
            yield woken
        finally:
            with self._lock:
                watchers = self._watchers.get(instance_id)
                if watchers is not None:
                    watchers.discard(woken)
                    if not watchers:
                        del self._watchers[instance_id]

    def notify(self, instance_id: str) -> None:
        """A change of the instance has committed."""
        if not self._watchers:
            # Nobody watches anything (the usual case): no lock on the path of every fire.
            # A watcher registered meanwhile reads the database after registering, so it
            # sees this change anyway.
            return
        with self._lock:
            for woken in self._watchers.get(instance_id, ()):
                woken.set()


class ServiceBase:
    """The store, the clock, the scheduler, and the parsed workflow versions.

    ``files`` is the area a webhook's rows are stored in, read as read_csv reads an
    upload (with ``limits``); without it, webhook triggers cannot take rows.
    ``on_commit`` is told about every committed change (metrics count from it) and must
    not raise.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], int] = now_ms,
        catalog: BlockCatalog | None = None,
        files: FileArea | None = None,
        limits: Limits = DEFAULT_LIMITS,
        on_commit: Callable[[Instance, list[Event]], None] = lambda _i, _e: None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.catalog = catalog
        self.files = files
        self.limits = limits
        self.scheduler: Scheduler = _Inline()
        self.block_runs = BlockRuns(store)
        self.on_commit = on_commit
        self.changes = Changes()
        self.started_at = clock()
        self._workflows: dict[tuple[str, int], Workflow] = {}
        self._workflows_lock = threading.Lock()

    def _workflow(self, stored: StoredDefinition) -> Workflow:
        # Stored versions never change, so each is parsed once per process.
        key = (stored.id, stored.version)
        workflow = self._workflows.get(key)
        if workflow is None:
            spec = DefinitionSpec.model_validate(stored.content)
            warnings = tuple(Problem(**item) for item in stored.warnings)
            workflow = Workflow(spec, stored.version, stored.created_at, warnings)
            with self._workflows_lock:
                self._workflows.setdefault(key, workflow)
        return workflow

    def _load(self, tx: Transaction, definition_id: str, version: int | None = None) -> Workflow:
        if version is not None:
            cached = self._workflows.get((definition_id, version))
            if cached is not None:
                return cached
        stored = tx.definition(definition_id, version)
        if stored is not None:
            return self._workflow(stored)
        if version is not None and tx.definition(definition_id) is not None:
            raise DefinitionVersionNotFound(
                f"Definition '{definition_id}' has no version {version}.",
                definition_id=definition_id, versions=tx.definition_versions(definition_id),
            )
        raise DefinitionNotFound(
            f"No definition has id '{definition_id}'.", definition_id=definition_id
        )

    def _instance(self, tx: Transaction, instance_id: str, *, lock: bool = False) -> Instance:
        instance = tx.instance(instance_id, lock=lock)
        if instance is None:
            raise InstanceNotFound(f"No instance has id '{instance_id}'.", instance_id=instance_id)
        return instance

    def _commit(self, tx: Transaction, before: Instance, change: Change) -> None:
        """Store a change computed from ``before``, if nobody changed the instance since."""
        if not tx.update_instance(change.instance, expected_version=before.version):
            raise ConcurrentModification(
                f"Instance '{before.id}' changed while this request was being handled; "
                "read it again and retry.", instance_id=before.id,
            )
        if before.status is InstanceStatus.RUNNING:
            # Whatever moves a running instance on settles its run: nobody runs it any more.
            BlockRuns.end(tx, before.id, before.version, now=change.instance.updated_at)
        self._record(tx, change)

    def _record(self, tx: Transaction, change: Change) -> None:
        """Append a change's events and, if it starts a block, record the run and hand it
        to the scheduler, all in ``tx``."""
        tx.append_events(change.events)
        instance = change.instance
        if (instance.status is InstanceStatus.RUNNING and change.events
                and change.events[-1].type is EventType.BLOCK_STARTED):
            BlockRuns.record(tx, instance.id, instance.version, now=instance.updated_at)
            self.scheduler.enqueue(tx, instance.id, instance.version)

        def committed() -> None:
            self.on_commit(change.instance, change.events)
            self.changes.notify(instance.id)

        tx.after_commit(committed)
