"""Block runs, as the service layer sees them: what is pending, how a run settles, retry,
cancel, and which table an instance had at each point of its history."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import core
from ..core import Change, Event, EventType, Instance, InstanceStatus, TableInfo, Workflow
from ..core.definitions import BlockSpec
from ..errors import EventNotFound, NoTable, NotRunning
from ..store.block_runs import BlockRunStatus
from .base import ServiceBase

__all__ = ["PendingRun", "Runs", "progress_view"]


def progress_view(block: str, rows_done: int, rows_total: int | None,
                  started_at: int | None, rows_sent: int | None = None,
                  branches: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A running block's progress, as shown on its instance (a fork's with each branch's)."""
    percent = round(100 * rows_done / rows_total, 1) if rows_total else None
    return {
        "block": block, "rows_done": rows_done, "rows_total": rows_total,
        "percent": min(percent, 100.0) if percent is not None else None,
        "started_at": started_at, "rows_sent": rows_sent,
        **({"branches": branches} if branches is not None else {}),
    }


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

    @property
    def block_spec(self) -> BlockSpec:
        """The block as it runs: with the parameters its start recorded."""
        spec = self.workflow.states[self.instance.current_state].block
        assert spec is not None, "a running instance is in a state with a block"
        return BlockSpec(type=spec.type,
                         params=(self.started.data or {}).get("params", spec.params))


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

    def _settle(self, run: PendingRun, settle: Callable[[Instance], Change]) -> Instance | None:
        with self.store.write() as tx:
            instance = self._instance(tx, run.instance.id)
            # Cancelled, retried or otherwise moved on meanwhile: this result is stale.
            if (instance.status is not InstanceStatus.RUNNING
                    or instance.version != run.started.seq):
                return None
            change = settle(instance)
            self._commit(tx, instance, change)
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
        return change.instance, workflow

    def cancel(self, instance_id: str, *, branch: str | None = None,
               actor: str | None = None) -> tuple[Instance, Workflow]:
        """Record that the running block (or one branch of a running fork) is cancelled;
        the runner stops it. A branch's cancel leaves the others running: the state is
        cancelled when they have ended."""
        with self.store.write() as tx:
            instance = self._instance(tx, instance_id)
            workflow = self._load(tx, instance.definition_id, instance.definition_version)
            if instance.status is not InstanceStatus.RUNNING:
                raise NotRunning(
                    f"Nothing to cancel: instance '{instance_id}' is {instance.status} in "
                    f"'{instance.current_state}'.", instance_status=instance.status.value,
                )
            if branch is not None:
                core.check_branch(workflow, instance, branch)
                self.block_runs.cancel_branch(tx, instance_id, instance.version, branch, actor)
            else:
                change = core.block_cancelled(workflow, instance, now=self.clock(), actor=actor)
                self._commit(tx, instance, change)
        if branch is not None:
            self.scheduler.cancel_branch(instance_id, instance.version, branch)
            return instance, workflow
        self.scheduler.cancel(instance_id, instance.version)
        return change.instance, workflow

    def settle_cancelled(
        self, run: PendingRun, *, error: Mapping[str, Any], timing: Mapping[str, Any]
    ) -> Instance | None:
        """Record that the block stopped because some of its branches were cancelled."""
        return self._settle(run, lambda instance: core.block_cancelled(
            run.workflow, instance, now=self.clock(), error=error, timing=timing,
        ))

    def progress(self, instance: Instance) -> dict[str, Any] | None:
        """How far the instance's running block has got, as its worker last reported (or
        live, if it runs in this process); None if it is not running."""
        if instance.status is not InstanceStatus.RUNNING:
            return None
        live = self.scheduler.progress(instance.id, instance.version)
        if live is not None:
            return live
        run = self.block_runs.get(instance.id, instance.version)
        if run is None or run.status is not BlockRunStatus.RUNNING or run.block is None:
            return None
        return progress_view(run.block, run.rows_done, run.rows_total, run.started_at,
                             run.rows_sent, run.branches)

    def wait_for_blocks(self, instance_id: str, timeout: float) -> None:
        """Return when the instance runs no block (its blocks, and the automatic actions
        after them, have settled), or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self.scheduler.wait(instance_id, timeout)
        # Run by another process (or not yet picked up): watch the store.
        pause = 0.02
        while True:
            with self.store.read() as tx:
                instance = self._instance(tx, instance_id)
            remaining = deadline - time.monotonic()
            if instance.status is not InstanceStatus.RUNNING or remaining <= 0:
                return
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.25)

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
