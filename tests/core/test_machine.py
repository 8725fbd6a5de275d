"""The state machine's rules: start, fire, what may fire, replay."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import approval
from workflow_engine import core, errors
from workflow_engine.core import EventType, InstanceStatus, Workflow


@pytest.fixture
def workflow() -> Workflow:
    return Workflow(core.validate_definition(approval()).spec, version=3)


def started(workflow: Workflow) -> core.Instance:
    return core.start(workflow, "i1", now=1000).instance


def fired(workflow: Workflow, instance: core.Instance, action_id: str, now: int = 0,
          actor: str | None = None) -> tuple[core.Instance, core.Event]:
    change = core.fire(workflow, instance, action_id, now=now, actor=actor)
    assert len(change.events) == 1
    return change.instance, change.events[0]


class TestStart:
    def test_starts_in_the_initial_state(self, workflow: Workflow) -> None:
        """A new instance sits in the initial state at version 1, with one event."""
        change = core.start(workflow, "i1", now=1000, context={"k": 1}, actor="ann")
        instance, (event,) = change.instance, change.events
        assert (instance.current_state, instance.status, instance.version) == (
            "draft", InstanceStatus.ACTIVE, 1)
        assert (instance.definition_version, instance.context) == (3, {"k": 1})
        assert (event.seq, event.type, event.to_state, event.actor) == (
            1, EventType.INSTANCE_STARTED, "draft", "ann")

    def test_an_initial_final_state_completes_at_once(self) -> None:
        """A one-state workflow is done as soon as it starts."""
        spec = core.validate_definition({"id": "one", "name": "One", "states": [
            {"id": "done", "name": "Done", "is_initial": True, "is_final": True}]}).spec
        instance = core.start(Workflow(spec, 1), "i", now=0).instance
        assert instance.status is InstanceStatus.COMPLETED


class TestFire:
    def test_moves_and_records(self, workflow: Workflow) -> None:
        """Firing moves to the target, bumps the version and records who did what."""
        changed, event = fired(workflow, started(workflow), "submit", now=2000, actor="bob")
        assert (changed.current_state, changed.version, changed.updated_at) == ("review", 2, 2000)
        assert (event.seq, event.type, event.action_id, event.from_state, event.to_state,
                event.actor) == (2, EventType.ACTION_FIRED, "submit", "draft", "review", "bob")

    def test_reaching_a_final_state_completes(self, workflow: Workflow) -> None:
        """An instance in a final state is completed."""
        review, _ = fired(workflow, started(workflow), "submit", now=1)
        done, _ = fired(workflow, review, "approve", now=2)
        assert done.status is InstanceStatus.COMPLETED

    @pytest.mark.parametrize(
        ("path", "action_id", "error", "words"),
        [
            ([], "nope", errors.ActionNotFound, "definition 'approval' v3 has no such action"),
            ([], "approve", errors.ActionNotAvailable, "Can't fire 'approve' when in 'draft'"),
            (["submit"], "escalate", errors.ActionDisabled, "'escalate' when in 'review'"),
            (["submit", "approve"], "rework", errors.InstanceFinal, "'approved' is a final"),
            ([], "archive", errors.TargetStateDisabled, "target state 'archived' is disabled"),
        ],
    )
    def test_refusals_name_the_action_and_the_state(
        self, workflow: Workflow, path: list[str], action_id: str,
        error: type[errors.WorkflowError], words: str,
    ) -> None:
        """Each refusal has its own error, and its message says what and where."""
        instance = started(workflow)
        for step in path:
            instance, _ = fired(workflow, instance, step)
        with pytest.raises(error) as caught:
            core.fire(workflow, instance, action_id, now=99)
        assert words in caught.value.detail
        assert caught.value.context["current_state"] == instance.current_state


class TestAvailableActions:
    def test_only_enabled_actions_into_enabled_states(self, workflow: Workflow) -> None:
        """Disabled actions and actions into disabled states are not offered."""
        draft = started(workflow)
        review, _ = fired(workflow, draft, "submit")
        assert [a.id for a in core.available_actions(workflow, draft)] == ["submit"]
        assert [a.id for a in core.available_actions(workflow, review)] == [
            "approve", "reject", "rework"]

    def test_nothing_from_a_final_state(self, workflow: Workflow) -> None:
        review, _ = fired(workflow, started(workflow), "submit")
        approved, _ = fired(workflow, review, "approve")
        assert core.available_actions(workflow, approved) == []


class TestReplay:
    def test_reproduces_the_current_state(self, workflow: Workflow) -> None:
        """Replaying the events of a run ends where the run ended."""
        change = core.start(workflow, "i", now=0)
        instance, history = change.instance, list(change.events)
        for step in ["submit", "rework", "submit", "reject"]:
            instance, event = fired(workflow, instance, step)
            history.append(event)
        assert core.replay(workflow, history) == instance.current_state == "rejected"

    def test_refuses_a_history_with_a_gap(self, workflow: Workflow) -> None:
        change = core.start(workflow, "i", now=0)
        _, second = fired(workflow, change.instance, "submit")
        third = dataclasses.replace(second, seq=3)
        with pytest.raises(ValueError, match="where 2 was expected"):
            core.replay(workflow, [change.events[0], third])

    def test_refuses_an_empty_history(self, workflow: Workflow) -> None:
        with pytest.raises(ValueError, match="empty"):
            core.replay(workflow, [])
