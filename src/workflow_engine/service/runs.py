"""Block runs, as the service layer sees them: what is pending, how a run settles, retry,
cancel, and which table an instance had at each point of its history."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import core
from ..core import Change, Event, EventType, Instance, InstanceStatus, TableInfo, Workflow
from ..errors import EventNotFound, NoTable, NotRunning
from .base import ServiceBase

__all__ = ["PendingRun", "Runs"]


@dataclass(frozen=True)
class PendingRun:
    """A block waiting to run: which one, and on which input table."""

    instance: Instance
    workflow: Workflow
    started: Event

    @property
    def input_seq(self) -> int | None:
        """The snapshot the block reads (None: the block starts without a table)."""
        seq = (self.started.data or {}).get("input_seq")
        return int(seq) if seq is not None else None


class Runs(ServiceBase):
    """The lifecycle of a state's block."""

    def pending_run(self, instance_id: str) -> PendingRun | None:
        """The block an instance is waiting on, if it is running."""
        with self.store.read() as tx:
            instance = self._instance(tx, instance_id)
            if instance.status is not InstanceStatus.RUNNING:
                return None
            started = tx.event(instance_id, instance.version)
            workflow = self._load(tx, instance.definition_id, instance.definition_version)
        if started is None or started.type is not EventType.BLOCK_STARTED:
            return None
        return PendingRun(instance, workflow, started)

    def running_instances(self) -> list[str]:
        """Instances whose block was running when the server last stopped."""
        with self.store.read() as tx:
            return tx.running_instances()

    def _settle(self, run: PendingRun, settle: Callable[[Instance], Change]) -> Instance | None:
        with self.store.write() as tx:
            instance = self._instance(tx, run.instance.id)
            # Cancelled, retried or otherwise moved on meanwhile: this result is stale.
            if (instance.status is not InstanceStatus.RUNNING
                    or instance.version != run.started.seq):
                return None
            change = settle(instance)
            self._commit(tx, instance, change)
        self._schedule(change.instance)
        return change.instance

    def settle_success(
        self, run: PendingRun, *, table_seq: int, rows: int, columns: Iterable[str],
        timing: Mapping[str, Any],
    ) -> Instance | None:
        """Record the block's output (already stored as snapshot ``table_seq``)."""
        return self._settle(run, lambda instance: core.block_succeeded(
            run.workflow, instance, now=self.clock(), started_seq=run.started.seq,
            table_seq=table_seq, rows=rows, columns=columns, timing=timing,
        ))

    def settle_failure(
        self, run: PendingRun, *, error: Mapping[str, Any], timing: Mapping[str, Any]
    ) -> Instance | None:
        """Record the block's failure."""
        return self._settle(run, lambda instance: core.block_failed(
            run.workflow, instance, now=self.clock(), error=error, timing=timing,
        ))

    def retry(self, instance_id: str, *, actor: str | None = None) -> tuple[Instance, Workflow]:
        """Run a failed or cancelled block again, from the same input."""
        with self.store.write() as tx:
            instance = self._instance(tx, instance_id)
            workflow = self._load(tx, instance.definition_id, instance.definition_version)
            change = core.retry(workflow, instance, now=self.clock(), actor=actor)
            self._commit(tx, instance, change)
        self._schedule(change.instance)
        return change.instance, workflow

    def cancel(self, instance_id: str, *, actor: str | None = None) -> tuple[Instance, Workflow]:
        """Record that the running block is cancelled; the runner stops it."""
        with self.store.write() as tx:
            instance = self._instance(tx, instance_id)
            workflow = self._load(tx, instance.definition_id, instance.definition_version)
            if instance.status is not InstanceStatus.RUNNING:
                raise NotRunning(
                    f"Nothing to cancel: instance '{instance_id}' is {instance.status} in "
                    f"'{instance.current_state}'.", instance_status=instance.status.value,
                )
            change = core.block_cancelled(workflow, instance, now=self.clock(), actor=actor)
            self._commit(tx, instance, change)
        return change.instance, workflow

    def table_at(self, instance_id: str, seq: int | None = None) -> TableInfo:
        """The table the instance had after event ``seq`` (now, by default)."""
        with self.store.read() as tx:
            instance = self._instance(tx, instance_id)
            if seq is None:
                if instance.table is None:
                    raise NoTable(f"Instance '{instance_id}' has no table yet.")
                return instance.table
            if tx.event(instance_id, seq) is None:
                raise EventNotFound(
                    f"Instance '{instance_id}' has no history event {seq}.", seq=seq
                )
            produced = tx.last_event(instance_id, EventType.BLOCK_SUCCEEDED, at_or_before=seq)
        if produced is None or produced.data is None:
            raise NoTable(f"Instance '{instance_id}' had no table yet after event {seq}.")
        data = produced.data
        return TableInfo(int(data.get("table_seq", data["started_seq"])), int(data["rows_out"]),
                         tuple(data["columns"]))
