"""The state machine's rules: starting, firing, what may fire now, and replay.

Pure functions over a :class:`~.definitions.Workflow` and an :class:`~.instances.Instance`
snapshot. They return the new snapshot and the events to append; storing both in one
transaction is the caller's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ..errors import (
    ActionDisabled,
    ActionNotAvailable,
    ActionNotFound,
    InstanceFinal,
    TargetStateDisabled,
)
from .definitions import ActionSpec, Workflow
from .history import Event, EventType
from .instances import Instance, InstanceStatus

__all__ = ["available_actions", "check_fire", "fire", "replay", "start", "status_in"]


def status_in(workflow: Workflow, state_id: str) -> InstanceStatus:
    """The status an instance has while in ``state_id``."""
    if workflow.states[state_id].is_final:
        return InstanceStatus.COMPLETED
    return InstanceStatus.ACTIVE


def start(
    workflow: Workflow,
    instance_id: str,
    *,
    now: int,
    context: dict[str, Any] | None = None,
    actor: str | None = None,
) -> tuple[Instance, Event]:
    """A new instance in the workflow's initial state, and its first event."""
    initial = workflow.initial_state.id
    instance = Instance(
        id=instance_id,
        definition_id=workflow.id,
        definition_version=workflow.version,
        current_state=initial,
        status=status_in(workflow, initial),
        version=1,
        created_at=now,
        updated_at=now,
        context=dict(context or {}),
    )
    event = Event(instance_id, 1, EventType.INSTANCE_STARTED, None, initial, now, actor=actor)
    return instance, event


def check_fire(workflow: Workflow, instance: Instance, action_id: str) -> ActionSpec:
    """Return the action if it may fire now; raise the error that says why not otherwise.

    The checks run in the order a client would want them explained: the action must
    exist, the instance must not be finished, the action must be enabled, leave from the
    current state, and lead into an enabled state.
    """
    action = workflow.actions.get(action_id)
    state = instance.current_state
    if action is None:
        raise ActionNotFound(
            f"Can't fire '{action_id}' when in '{state}': definition '{workflow.id}' "
            f"v{workflow.version} has no such action.",
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
    return action


def fire(
    workflow: Workflow,
    instance: Instance,
    action_id: str,
    *,
    now: int,
    next_seq: int,
    actor: str | None = None,
) -> tuple[Instance, Event]:
    """Fire ``action_id``: the instance after it, and the event that records it."""
    action = check_fire(workflow, instance, action_id)
    changed = replace(
        instance,
        current_state=action.to_state,
        status=status_in(workflow, action.to_state),
        version=instance.version + 1,
        updated_at=now,
    )
    event = Event(
        instance.id, next_seq, EventType.ACTION_FIRED, instance.current_state, action.to_state,
        now, action_id=action.id, actor=actor,
    )
    return changed, event


def available_actions(workflow: Workflow, state_id: str) -> list[ActionSpec]:
    """The actions that can fire from ``state_id`` now, in definition order."""
    if workflow.states[state_id].is_final:
        return []
    return [
        action
        for action in workflow.actions_from(state_id)
        if action.enabled and workflow.states[action.to_state].enabled
    ]


def replay(workflow: Workflow, events: Iterable[Event]) -> str:
    """The state that an instance's history leads to, checking every step against the rules.

    Raises the same errors as :func:`fire` if the history contains a step the
    definition does not allow, and ``ValueError`` if the history is not well-formed.
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
        if state is None or event.action_id is None or event.from_state != state:
            raise ValueError(f"History event {event.seq} does not follow from state {state!r}.")
        probe = Instance("replay", workflow.id, workflow.version, state,
                         InstanceStatus.ACTIVE, 0, 0, 0)
        state = check_fire(workflow, probe, event.action_id).to_state
        if state != event.to_state:
            raise ValueError(f"History event {event.seq} records an impossible target.")
    if state is None:
        raise ValueError("History is empty.")
    return state
