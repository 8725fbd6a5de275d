"""Properties over random valid definitions and random action sequences."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from workflow_engine import core, errors
from workflow_engine.core import InstanceStatus, Workflow


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    """Random definitions that pass validation: states, flags and actions at random."""
    count = draw(st.integers(min_value=1, max_value=8))
    ids = [f"s{i}" for i in range(count)]
    initial = draw(st.sampled_from(ids))
    finals = set(draw(st.lists(st.sampled_from(ids), max_size=count)))
    states = [
        {"id": sid, "name": sid, "is_initial": sid == initial, "is_final": sid in finals,
         "enabled": sid == initial or draw(st.booleans())}
        for sid in ids
    ]
    sources = [sid for sid in ids if sid not in finals]
    actions = []
    if sources:
        for index in range(draw(st.integers(min_value=0, max_value=12))):
            actions.append({
                "id": f"a{index}", "name": f"a{index}",
                "enabled": draw(st.booleans()),
                "from_states": draw(st.lists(st.sampled_from(sources), min_size=1,
                                             max_size=3, unique=True)),
                "to_state": draw(st.sampled_from(ids)),
            })
    return {"id": "random", "name": "Random", "states": states, "actions": actions}


@settings(max_examples=300, deadline=None)
@given(document=definitions(), data=st.data())
def test_random_runs_keep_the_machine_consistent(
    document: dict[str, Any], data: st.DataObject
) -> None:
    """Whatever is fired, the state is one of the definition's, a refused action changes
    nothing, the status matches the state, and replaying history gives the current state."""
    workflow = Workflow(core.validate_definition(document).spec, version=1)
    change = core.start(workflow, "i", now=0)
    instance, history = change.instance, list(change.events)
    action_ids = [a["id"] for a in document["actions"]] + ["missing"]
    for _ in range(data.draw(st.integers(min_value=0, max_value=25))):
        action_id = data.draw(st.sampled_from(action_ids))
        allowed = {a.id for a in core.available_actions(workflow, instance)}
        try:
            change = core.fire(workflow, instance, action_id, now=len(history))
        except (errors.TransitionNotAllowed, errors.ActionNotFound):
            assert action_id not in allowed
            continue
        assert action_id in allowed
        instance = change.instance
        history.extend(change.events)
        assert instance.version == len(history)

    assert instance.current_state in workflow.states
    final = workflow.states[instance.current_state].is_final
    assert instance.status is (InstanceStatus.COMPLETED if final else InstanceStatus.ACTIVE)
    assert core.replay(workflow, history) == instance.current_state
