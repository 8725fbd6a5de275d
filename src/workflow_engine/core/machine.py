"""The state machine's rules: start, fire, enter a state, settle a block, replay.

Pure functions over a :class:`~.definitions.Workflow` and an :class:`~.instances.Instance`
snapshot. Each returns the new snapshot and the events to append; storing both in one
transaction is the caller's job. The firing order lives here, written once:
check the action -> check its guard -> leave the state -> enter the next (start its block,
or settle and follow automatic actions) -> record events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import (
    ActionDisabled,
    ActionNotAvailable,
    ActionNotFound,
    AutoTransitionLoop,
    BlockNotSucceeded,
    BranchNotFound,
    GuardNotSatisfied,
    InstanceBusy,
    InstanceFinal,
    NothingToRetry,
    TargetStateDisabled,
)
from .conditions import Guard, evaluate
from .definitions import ActionSpec, StateSpec, Workflow
from .history import Event, EventType
from .instances import Instance, InstanceStatus, TableInfo

__all__ = [
    "Change",
    "available_actions",
    "block_cancelled",
    "block_failed",
    "block_succeeded",
    "check_branch",
    "check_fire",
    "explain_actions",
    "fire",
    "replay",
    "retry",
    "start",
    "status_in",
]

MAX_AUTO_STEPS = 100


@dataclass
class Change:
    """An instance as changed so far, and the events that record the change."""

    instance: Instance
    events: list[Event] = field(default_factory=list)

    def record(
        self, kind: EventType, to_state: str, now: int, *, from_state: str | None = None,
        action_id: str | None = None, actor: str | None = None,
        data: dict[str, Any] | None = None, **changes: Any,
    ) -> None:
        """Append an event and apply ``changes`` to the snapshot, moving its version on."""
        seq = self.instance.version + 1
        self.events.append(Event(
            self.instance.id, seq, kind, from_state, to_state, now,
            action_id=action_id, actor=actor, data=data,
        ))
        self.instance = replace(self.instance, version=seq, updated_at=now, **changes)


def status_in(workflow: Workflow, state_id: str) -> InstanceStatus:
    """The status of an instance at rest in ``state_id``."""
    if workflow.states[state_id].is_final:
        return InstanceStatus.COMPLETED
    return InstanceStatus.ACTIVE


def facts(instance: Instance) -> dict[str, Any]:
    """What a guard can test: the table's shape and the context."""
    table = instance.table
    return {
        "row_count": table.rows if table else None,
        "column_count": len(table.columns) if table else None,
        "columns": list(table.columns) if table else [],
    }


def _fact(instance: Instance, name: str) -> Any:
    if not name.startswith("context."):
        return facts(instance)[name]
    value: Any = instance.context
    for part in name.removeprefix("context.").split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def guard_failures(guard: Guard | None, instance: Instance) -> list[str]:
    """Why a guard does not hold (empty when it does)."""
    if guard is None:
        return []
    failed = [
        f"{c.fact} {c.operator}" + (f" {c.value!r}" if c.value is not None else "")
        for c in guard.conditions if not evaluate(c, _fact(instance, c.fact))
    ]
    holds = not failed if guard.match == "all" else len(failed) < len(guard.conditions)
    return [] if holds else failed


def start(
    workflow: Workflow,
    instance_id: str,
    *,
    now: int,
    context: dict[str, Any] | None = None,
    inputs: dict[str, dict[str, Any]] | None = None,
    actor: str | None = None,
) -> Change:
    """A new instance entering the workflow's initial state.

    ``inputs`` are block parameters by state id, over the definition's (the caller has
    checked them against the blocks)."""
    initial = workflow.initial_state.id
    change = Change(Instance(
        id=instance_id, definition_id=workflow.id, definition_version=workflow.version,
        current_state=initial, status=InstanceStatus.ACTIVE, version=0,
        created_at=now, updated_at=now, context=dict(context or {}),
        inputs={state: dict(params) for state, params in (inputs or {}).items()},
    ))
    change.record(EventType.INSTANCE_STARTED, initial, now, actor=actor)
    _enter(workflow, change, now)
    return change


def check_fire(workflow: Workflow, instance: Instance, action_id: str) -> ActionSpec:
    """Return the action if it may fire now; raise the error that says why not otherwise.

    The checks run in the order a client would want them explained: the action must
    exist, the instance must not be busy or finished, the action must be enabled, leave
    from the current state, lead into an enabled state, and its guard must hold.
    """
    action = workflow.actions.get(action_id)
    state = instance.current_state
    if action is None:
        raise ActionNotFound(
            f"Can't fire '{action_id}' when in '{state}': definition '{workflow.id}' "
            f"v{workflow.version} has no such action.",
            action_id=action_id, current_state=state,
        )
    if instance.status is InstanceStatus.RUNNING:
        raise InstanceBusy(
            f"Can't fire '{action_id}' when in '{state}': its block is still running.",
            action_id=action_id, current_state=state,
        )
    if instance.status in (InstanceStatus.FAILED, InstanceStatus.CANCELLED):
        raise BlockNotSucceeded(
            f"Can't fire '{action_id}' when in '{state}': its block "
            f"{'failed' if instance.status is InstanceStatus.FAILED else 'was cancelled'}; "
            "retry it (POST .../retry) first.",
            action_id=action_id, current_state=state,
        )
    if workflow.states[state].is_final:
        raise InstanceFinal(
            f"Can't fire '{action_id}' when in '{state}': '{state}' is a final state.",
            action_id=action_id, current_state=state,
        )
    if not action.enabled:
        raise ActionDisabled(
            f"Can't fire '{action_id}' when in '{state}': the action is disabled.",
            action_id=action_id, current_state=state,
        )
    if state not in action.from_states:
        raise ActionNotAvailable(
            f"Can't fire '{action_id}' when in '{state}': it only leaves from "
            f"{', '.join(repr(s) for s in action.from_states)}.",
            action_id=action_id, current_state=state, from_states=list(action.from_states),
        )
    if not workflow.states[action.to_state].enabled:
        raise TargetStateDisabled(
            f"Can't fire '{action_id}' when in '{state}': "
            f"its target state '{action.to_state}' is disabled.",
            action_id=action_id, current_state=state, to_state=action.to_state,
        )
    failed = guard_failures(action.condition, instance)
    if failed:
        raise GuardNotSatisfied(
            f"Can't fire '{action_id}' when in '{state}': its condition does not hold "
            f"({'; '.join(failed)}).",
            action_id=action_id, current_state=state, failed_conditions=failed,
        )
    return action


def fire(
    workflow: Workflow,
    instance: Instance,
    action_id: str,
    *,
    now: int,
    actor: str | None = None,
) -> Change:
    """Fire ``action_id``, then enter its target state."""
    action = check_fire(workflow, instance, action_id)
    change = Change(instance)
    _move(workflow, change, action, now, actor=actor)
    return change


def _move(
    workflow: Workflow, change: Change, action: ActionSpec, now: int, *,
    actor: str | None = None, automatic: bool = False,
) -> None:
    change.record(
        EventType.ACTION_FIRED, action.to_state, now,
        from_state=change.instance.current_state, action_id=action.id, actor=actor,
        data={"trigger": "auto"} if automatic else None,
        current_state=action.to_state, error=None,
    )
    _enter(workflow, change, now)


def _enter(workflow: Workflow, change: Change, now: int, steps: int = 0) -> None:
    """The instance has just arrived in its current state: start the state's block, or
    come to rest and follow the first automatic action that can fire."""
    instance = change.instance
    state = workflow.states[instance.current_state]
    if state.block is not None:
        change.record(
            EventType.BLOCK_STARTED, state.id, now, from_state=state.id,
            data={
                "block": state.block.type, "params": run_params(state, instance),
                "input_seq": instance.table.seq if instance.table else None,
                "rows_in": instance.table.rows if instance.table else None,
            },
            status=InstanceStatus.RUNNING, error=None,
        )
        return
    _settle(workflow, change, now, steps)


def _settle(workflow: Workflow, change: Change, now: int, steps: int = 0) -> None:
    change.instance = replace(
        change.instance, status=status_in(workflow, change.instance.current_state)
    )
    automatic = next(
        (action for action in available_actions(workflow, change.instance)
         if action.trigger == "auto"),
        None,
    )
    if automatic is None:
        return
    if steps >= MAX_AUTO_STEPS:
        raise AutoTransitionLoop(
            f"More than {MAX_AUTO_STEPS} automatic actions in a row from "
            f"'{change.instance.current_state}'; the definition loops.",
            current_state=change.instance.current_state,
        )
    change.record(
        EventType.ACTION_FIRED, automatic.to_state, now,
        from_state=change.instance.current_state, action_id=automatic.id,
        data={"trigger": "auto"}, current_state=automatic.to_state, error=None,
    )
    _enter(workflow, change, now, steps + 1)


def _settle_after_block(
    workflow: Workflow, change: Change, now: int, *, entering: bool = False
) -> None:
    """Come to rest after a block (or enter the on_error state); if automatic actions
    loop, stop and fail here instead: raising would leave the instance running forever,
    as there is no request to refuse."""
    instance, recorded = change.instance, len(change.events)
    try:
        if entering:
            _enter(workflow, change, now)
        else:
            _settle(workflow, change, now)
    except AutoTransitionLoop as exc:
        change.instance, change.events[:] = instance, change.events[:recorded]
        change.instance = replace(
            change.instance, status=InstanceStatus.FAILED,
            error={"code": exc.code, "message": exc.detail},
        )


def _block_type(workflow: Workflow, instance: Instance) -> str:
    block = workflow.states[instance.current_state].block
    return block.type if block is not None else "none"


def _running_block(instance: Instance) -> None:
    if instance.status is not InstanceStatus.RUNNING:
        raise ValueError(f"Instance '{instance.id}' has no running block.")


def block_succeeded(
    workflow: Workflow, instance: Instance, *, now: int, started_seq: int, table_seq: int,
    rows: int, columns: Iterable[str], timing: Mapping[str, Any],
) -> Change:
    """The running block (started at ``started_seq``) produced its table, stored under
    ``table_seq``: its own seq, or its input's when it passed the table on unchanged."""
    _running_block(instance)
    change = Change(instance)
    table = TableInfo(table_seq, rows, tuple(columns))
    change.record(
        EventType.BLOCK_SUCCEEDED, instance.current_state, now,
        from_state=instance.current_state,
        data={"block": _block_type(workflow, instance), "started_seq": started_seq,
              "table_seq": table_seq, "rows_out": rows,
              "columns": list(table.columns), **timing},
        table=table,
    )
    _settle_after_block(workflow, change, now)
    return change


def block_failed(
    workflow: Workflow, instance: Instance, *, now: int, error: Mapping[str, Any],
    timing: Mapping[str, Any],
) -> Change:
    """The running block failed: go to the state's ``on_error`` state, or stay as failed."""
    _running_block(instance)
    state = workflow.states[instance.current_state]
    change = Change(instance)
    data = {"block": _block_type(workflow, instance), "error": dict(error), **timing}
    if state.on_error is None:
        change.record(
            EventType.BLOCK_FAILED, state.id, now, from_state=state.id, data=data,
            status=InstanceStatus.FAILED, error=dict(error),
        )
        return change
    change.record(
        EventType.BLOCK_FAILED, state.on_error, now, from_state=state.id, data=data,
        current_state=state.on_error, error=dict(error),
    )
    _settle_after_block(workflow, change, now, entering=True)
    return change


def block_cancelled(
    workflow: Workflow, instance: Instance, *, now: int, actor: str | None = None,
    error: Mapping[str, Any] | None = None, timing: Mapping[str, Any] | None = None,
) -> Change:
    """Stop waiting for the running block: the instance stays here as cancelled. A fork
    whose branches were cancelled one by one ends so too, with ``error`` saying which."""
    _running_block(instance)
    change = Change(instance)
    error = dict(error or {"code": "block_cancelled", "message": "The block was cancelled."})
    change.record(
        EventType.BLOCK_CANCELLED, instance.current_state, now,
        from_state=instance.current_state, actor=actor, status=InstanceStatus.CANCELLED,
        data={"block": _block_type(workflow, instance), **(timing or {}),
              **({"error": error} if "branches" in error else {})},
        error=error,
    )
    return change


def check_branch(workflow: Workflow, instance: Instance, branch: str) -> None:
    """Raise unless ``branch`` is a branch of the fork the instance runs now."""
    block = workflow.states[instance.current_state].block
    params = run_params(workflow.states[instance.current_state], instance) if block else {}
    ids = [b.get("id") for b in params.get("branches", ()) if isinstance(b, Mapping)]
    if block is None or block.type != "branches":
        raise BranchNotFound(
            f"Instance '{instance.id}' runs {block.type if block else 'no block'} in "
            f"'{instance.current_state}', not a fork: it has no branch '{branch}'.",
            branch=branch, current_state=instance.current_state)
    if branch not in ids:
        raise BranchNotFound(
            f"The fork in '{instance.current_state}' has no branch '{branch}'; its branches "
            f"are {', '.join(repr(i) for i in ids)}.", branch=branch, branches=ids,
            current_state=instance.current_state)


def retry(workflow: Workflow, instance: Instance, *, now: int, actor: str | None = None) -> Change:
    """Run the current state's block again, from the same input as the failed run."""
    state = workflow.states[instance.current_state]
    if instance.status not in (InstanceStatus.FAILED, InstanceStatus.CANCELLED) or not state.block:
        raise NothingToRetry(
            f"Nothing to retry: instance '{instance.id}' is {instance.status} in "
            f"'{state.id}'" + ("" if state.block else ", a state without a block") + ".",
            current_state=state.id, instance_status=instance.status.value,
        )
    change = Change(instance)
    change.record(
        EventType.BLOCK_STARTED, state.id, now, from_state=state.id, actor=actor,
        data={
            "block": state.block.type, "params": run_params(state, instance), "retry": True,
            "input_seq": instance.table.seq if instance.table else None,
            "rows_in": instance.table.rows if instance.table else None,
        },
        status=InstanceStatus.RUNNING, error=None,
    )
    return change


def run_params(state: StateSpec, instance: Instance) -> dict[str, Any]:
    """The parameters the state's block runs with: the definition's, under the
    instance's inputs for the state."""
    assert state.block is not None
    return {**state.block.params, **instance.inputs.get(state.id, {})}


def available_actions(workflow: Workflow, instance: Instance) -> list[ActionSpec]:
    """The actions that can fire now, in definition order."""
    return [action for action, reason in explain_actions(workflow, instance) if reason is None]


def explain_actions(workflow: Workflow, instance: Instance) -> list[tuple[ActionSpec, str | None]]:
    """Every action leaving the current state, each with why it cannot fire (or None)."""
    state = workflow.states[instance.current_state]
    explained = []
    for action in workflow.actions_from(state.id):
        if state.is_final:
            reason: str | None = f"'{state.id}' is a final state"
        elif instance.status is InstanceStatus.RUNNING:
            reason = "the state's block is still running"
        elif instance.status in (InstanceStatus.FAILED, InstanceStatus.CANCELLED):
            reason = f"the state's block {instance.status.value}; retry it first"
        elif not action.enabled:
            reason = "the action is disabled"
        elif not workflow.states[action.to_state].enabled:
            reason = f"its target state '{action.to_state}' is disabled"
        else:
            failed = guard_failures(action.condition, instance)
            reason = f"its condition does not hold ({'; '.join(failed)})" if failed else None
        explained.append((action, reason))
    return explained


def replay(workflow: Workflow, events: Iterable[Event]) -> str:
    """The state that an instance's history leads to, checking each step against the graph.

    Guards are not re-checked (they depended on facts of their time). Raises
    ``ValueError`` if the history is not well-formed or takes a step the graph forbids.
    """
    state: str | None = None
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            raise ValueError(f"History event {event.seq} found where {expected_seq} was expected.")
        if event.type is EventType.INSTANCE_STARTED:
            if state is not None or event.to_state != workflow.initial_state.id:
                raise ValueError("History does not begin with a start in the initial state.")
            state = event.to_state
            continue
        if state is None or event.from_state != state:
            raise ValueError(f"History event {event.seq} does not follow from state {state!r}.")
        if event.type is EventType.ACTION_FIRED:
            action = workflow.actions.get(event.action_id or "")
            if action is None or state not in action.from_states or (
                    action.to_state != event.to_state):
                raise ValueError(f"History event {event.seq} fires an impossible action.")
        elif event.type is EventType.BLOCK_FAILED and event.to_state != state:
            if workflow.states[state].on_error != event.to_state:
                raise ValueError(f"History event {event.seq} leaves for a wrong on_error state.")
        elif event.to_state != state:
            raise ValueError(f"History event {event.seq} moves where it cannot.")
        state = event.to_state
    if state is None:
        raise ValueError("History is empty.")
    return state
