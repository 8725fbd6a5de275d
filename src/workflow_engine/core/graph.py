"""The graph pass of validation: what a schema cannot check about states and actions.

One initial state, unique ids, references to existing states, nothing leaving a final
state, no automatic loop that never comes to rest; and warnings for what is legal but
probably not meant (unreachable states, dead ends, actions that can never fire).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ..errors import Problem
from .definitions import ActionSpec, StateSpec

__all__ = ["check_graph"]


def check_graph(
    states: Sequence[tuple[int, StateSpec]],
    actions: Sequence[tuple[int, ActionSpec]],
    *,
    all_states: bool = True,
) -> tuple[list[Problem], list[Problem]]:
    """Check the state graph; return ``(errors, warnings)``.

    Indexes are positions in the posted document, so paths point at what the client wrote.
    ``all_states`` is False when some states failed the shape pass: then a missing initial
    state may be one of those, and is not reported twice.
    """
    errors: list[Problem] = []
    warnings: list[Problem] = []

    state_by_id: dict[str, StateSpec] = {}
    state_index: dict[str, int] = {}
    for index, state in states:
        if state.id in state_by_id:
            errors.append(Problem(
                f"states[{index}].id", "duplicate_state_id",
                f"State id '{state.id}' is already used by states[{state_index[state.id]}].",
            ))
            continue
        state_by_id[state.id] = state
        state_index[state.id] = index

    initial = [(index, state) for index, state in states if state.is_initial]
    if not initial and states and all_states:
        errors.append(Problem("states", "no_initial_state", "Exactly one state must be initial."))
    for index, _state in initial[1:]:
        errors.append(Problem(
            f"states[{index}].is_initial", "multiple_initial_states",
            f"Exactly one state must be initial; states[{initial[0][0]}] already is.",
        ))
    if initial and not initial[0][1].enabled:
        errors.append(Problem(
            f"states[{initial[0][0]}].enabled", "initial_state_disabled",
            f"The initial state '{initial[0][1].id}' must be enabled.",
        ))

    seen_actions: dict[str, int] = {}
    for index, action in actions:
        if action.id in seen_actions:
            errors.append(Problem(
                f"actions[{index}].id", "duplicate_action_id",
                f"Action id '{action.id}' is already used by actions[{seen_actions[action.id]}].",
            ))
        else:
            seen_actions[action.id] = index
        seen_from: set[str] = set()
        for position, state_id in enumerate(action.from_states):
            path = f"actions[{index}].from_states[{position}]"
            if state_id in seen_from:
                errors.append(Problem(
                    path, "duplicate_from_state",
                    f"Action '{action.id}' lists '{state_id}' twice in from_states.",
                ))
            seen_from.add(state_id)
            source = state_by_id.get(state_id)
            if source is None:
                errors.append(Problem(path, "unknown_state", f"No state has id '{state_id}'."))
            elif source.is_final:
                errors.append(Problem(
                    path, "action_from_final_state",
                    f"Action '{action.id}' leaves final state '{state_id}'; "
                    "nothing may leave a final state.",
                ))
        target = state_by_id.get(action.to_state)
        if target is None:
            errors.append(Problem(
                f"actions[{index}].to_state", "unknown_state",
                f"No state has id '{action.to_state}'.",
            ))
        elif not target.enabled and action.enabled:
            warnings.append(Problem(
                f"actions[{index}].to_state", "action_into_disabled_state",
                f"Action '{action.id}' leads into disabled state '{target.id}' and cannot fire.",
            ))

    for index, state in states:
        if state.on_error is None:
            continue
        path = f"states[{index}].on_error"
        target = state_by_id.get(state.on_error)
        if target is None:
            errors.append(Problem(path, "unknown_state", f"No state has id '{state.on_error}'."))
        elif state.on_error == state.id:
            errors.append(Problem(path, "on_error_loop",
                                  f"State '{state.id}' cannot be its own on_error state."))
        elif state.block is None:
            warnings.append(Problem(path, "on_error_without_block",
                                    f"State '{state.id}' has no block, so on_error never applies."))
        elif not target.enabled:
            errors.append(Problem(path, "on_error_into_disabled_state",
                                  f"on_error state '{target.id}' is disabled."))

    unguarded_auto: dict[str, list[str]] = {}
    for _, action in actions:
        if action.trigger == "auto" and action.enabled and action.condition is None:
            for origin in action.from_states:
                unguarded_auto.setdefault(origin, []).append(action.id)
    for origin, ids in unguarded_auto.items():
        if len(ids) > 1 and origin in state_index:
            warnings.append(Problem(
                f"states[{state_index[origin]}]", "ambiguous_auto_actions",
                f"State '{origin}' has several automatic actions without a condition "
                f"({', '.join(ids)}); only the first, '{ids[0]}', will ever fire.",
            ))

    if not errors:
        errors.extend(_automatic_loops(state_by_id, state_index, actions))
    if initial and not errors:
        warnings.extend(_reachability_warnings(initial[0][1], state_by_id, state_index, actions))
    return errors, warnings


def _automatic_loops(
    state_by_id: dict[str, StateSpec],
    state_index: dict[str, int],
    actions: Sequence[tuple[int, ActionSpec]],
) -> list[Problem]:
    """States from which automatic actions without conditions go round forever.

    Entering a state without a block follows its first automatic action at once; a cycle of
    such steps never comes to rest.
    """
    following: dict[str, str] = {}
    for _, action in actions:
        for origin in action.from_states:
            state = state_by_id[origin]
            if (origin in following or state.block is not None or state.is_final
                    or action.trigger != "auto" or not action.enabled):
                continue
            if action.condition is None and state_by_id[action.to_state].enabled:
                following[origin] = action.to_state
            else:
                following.setdefault(origin, "")  # guarded or blocked: may rest here
    looping: set[str] = set()
    for start in following:
        seen, current = [start], following.get(start, "")
        while current and current not in seen and state_by_id[current].block is None:
            seen.append(current)
            current = following.get(current, "")
        if current in seen:
            looping.update(seen[seen.index(current):])
    return [
        Problem(f"states[{state_index[state_id]}]", "auto_transition_loop",
                f"Automatic actions without a condition lead from '{state_id}' round in a "
                "loop that never comes to rest.")
        for state_id in sorted(looping, key=state_index.__getitem__)
    ]


def _reachability_warnings(
    initial: StateSpec,
    state_by_id: dict[str, StateSpec],
    state_index: dict[str, int],
    actions: Sequence[tuple[int, ActionSpec]],
) -> list[Problem]:
    """Unreachable states, dead ends, and no final state in reach, over what can fire."""
    can_fire = [
        action for _, action in actions if action.enabled and state_by_id[action.to_state].enabled
    ]
    successors: dict[str, set[str]] = {state_id: set() for state_id in state_by_id}
    for action in can_fire:
        for state_id in action.from_states:
            successors[state_id].add(action.to_state)
    for state_id, state in state_by_id.items():
        if state.block is not None and state.on_error is not None:
            successors[state_id].add(state.on_error)

    reachable = {initial.id}
    queue = deque([initial.id])
    while queue:
        for nxt in successors[queue.popleft()]:
            if nxt not in reachable:
                reachable.add(nxt)
                queue.append(nxt)

    warnings = []
    for state_id, state in state_by_id.items():
        path = f"states[{state_index[state_id]}]"
        if state_id not in reachable:
            warnings.append(Problem(
                path, "unreachable_state",
                f"State '{state_id}' cannot be reached from the initial state '{initial.id}'.",
            ))
        elif not state.is_final and not successors[state_id]:
            warnings.append(Problem(
                path, "dead_end_state",
                f"State '{state_id}' is not final and no enabled action leaves it.",
            ))
    if not any(state_by_id[state_id].is_final for state_id in reachable):
        warnings.append(Problem(
            "states", "no_final_state_reachable",
            f"No final state can be reached from the initial state '{initial.id}'.",
        ))
    return warnings
