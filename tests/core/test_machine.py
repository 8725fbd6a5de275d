"""The state machine's rules: start, fire, what may fire, replay."""

from __future__ import annotations

import pytest

from tests.conftest import approval
from workflow_engine import core, errors
from workflow_engine.core import EventType, InstanceStatus, Workflow


@pytest.fixture
def workflow() -> Workflow:
    return Workflow(core.validate_definition(approval()).spec, version=3)


def started(workflow: Workflow) -> core.Instance:
    instance, _ = core.start(workflow, "i1", now=1000)
    return instance


class TestStart:
    def test_starts_in_the_initial_state(self, workflow: Workflow) -> None:
        """A new instance sits in the initial state at version 1, with one event."""
        instance, event = core.start(workflow, "i1", now=1000, context={"k": 1}, actor="ann")
        assert (instance.current_state, instance.status, instance.version) == (
            "draft", InstanceStatus.ACTIVE, 1)
        assert (instance.definition_version, instance.context) == (3, {"k": 1})
        assert (event.seq, event.type, event.to_state, event.actor) == (
            1, EventType.INSTANCE_STARTED, "draft", "ann")

    def test_an_initial_final_state_completes_at_once(self) -> None:
        """A one-state workflow is done as soon as it starts."""
        spec = core.validate_definition({"id": "one", "name": "One", "states": [
            {"id": "done", "name": "Done", "is_initial": True, "is_final": True}]}).spec
        instance, _ = core.start(Workflow(spec, 1), "i", now=0)
        assert instance.status is InstanceStatus.COMPLETED


class TestFire:
    def test_moves_and_records(self, workflow: Workflow) -> None:
        """Firing moves to the target, bumps the version and records who did what."""
        changed, event = core.fire(workflow, started(workflow), "submit", now=2000, next_seq=2,
                                   actor="bob")
        assert (changed.current_state, changed.version, changed.updated_at) == ("review", 2, 2000)
        assert (event.seq, event.type, event.action_id, event.from_state, event.to_state,
                event.actor) == (2, EventType.ACTION_FIRED, "submit", "draft", "review", "bob")

    def test_reaching_a_final_state_completes(self, workflow: Workflow) -> None:
        """An instance in a final state is completed."""
        review, _ = core.fire(workflow, started(workflow), "submit", now=1, next_seq=2)
        done, _ = core.fire(workflow, review, "approve", now=2, next_seq=3)
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
        for seq, step in enumerate(path, start=2):
            instance, _ = core.fire(workflow, instance, step, now=seq, next_seq=seq)
        with pytest.raises(error) as caught:
            core.fire(workflow, instance, action_id, now=99, next_seq=99)
        assert words in caught.value.detail
        assert caught.value.context["current_state"] == instance.current_state


class TestAvailableActions:
    def test_only_enabled_actions_into_enabled_states(self, workflow: Workflow) -> None:
        """Disabled actions and actions into disabled states are not offered."""
        assert [a.id for a in core.available_actions(workflow, "draft")] == ["submit"]
        assert [a.id for a in core.available_actions(workflow, "review")] == [
            "approve", "reject", "rework"]

    def test_nothing_from_a_final_state(self, workflow: Workflow) -> None:
        assert core.available_actions(workflow, "approved") == []


class TestReplay:
    def test_reproduces_the_current_state(self, workflow: Workflow) -> None:
        """Replaying the events of a run ends where the run ended."""
        instance, first = core.start(workflow, "i", now=0)
        history = [first]
        for seq, step in enumerate(["submit", "rework", "submit", "reject"], start=2):
            instance, event = core.fire(workflow, instance, step, now=seq, next_seq=seq)
            history.append(event)
        assert core.replay(workflow, history) == instance.current_state == "rejected"

    def test_refuses_a_history_with_a_gap(self, workflow: Workflow) -> None:
        instance, first = core.start(workflow, "i", now=0)
        _, second = core.fire(workflow, instance, "submit", now=1, next_seq=3)
        with pytest.raises(ValueError, match="where 2 was expected"):
            core.replay(workflow, [first, second])

    def test_refuses_an_empty_history(self, workflow: Workflow) -> None:
        with pytest.raises(ValueError, match="empty"):
            core.replay(workflow, [])
