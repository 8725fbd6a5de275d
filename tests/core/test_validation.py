"""Definition validation: every problem at once, with JSON paths and stable codes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import approval
from workflow_engine.core import validate_definition
from workflow_engine.core.definitions import MAX_ACTIONS, MAX_STATES
from workflow_engine.errors import DefinitionInvalid


def problems(document: Any, *, strict: bool = False) -> set[tuple[str, str]]:
    """(path, code) of every error a document raises."""
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(document, strict=strict)
    return {(p.path, p.code) for p in caught.value.errors}


def state(state_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": state_id, "name": state_id.title(), **fields}


def action(action_id: str, sources: list[str], target: str, **fields: Any) -> dict[str, Any]:
    return {"id": action_id, "name": action_id, "from_states": sources, "to_state": target,
            **fields}


class TestValidDefinitions:
    def test_accepts_the_test_definition_with_its_warnings(self) -> None:
        """A valid definition passes; legal oddities come back as warnings."""
        validated = validate_definition(approval())
        assert validated.spec.id == "approval"
        assert {(w.path, w.code) for w in validated.warnings} == {
            ("actions[5].to_state", "action_into_disabled_state"),
            ("states[4]", "unreachable_state"),
        }

    def test_accepts_camel_case_fields(self) -> None:
        """isInitial, isFinal, fromStates and toState are the same as their snake_case."""
        validated = validate_definition({
            "id": "camel", "name": "Camel",
            "states": [{"id": "a", "name": "A", "isInitial": True},
                       {"id": "b", "name": "B", "isFinal": True}],
            "actions": [{"id": "go", "name": "Go", "fromStates": ["a"], "toState": "b"}],
        })
        assert validated.spec.states[0].is_initial
        assert validated.spec.states[1].is_final
        assert validated.spec.actions[0].from_states == ["a"]
        assert validated.warnings == ()

    def test_defaults(self) -> None:
        """enabled defaults to true, flags to false, descriptions to empty."""
        spec = validate_definition(
            {"id": "d", "name": "D", "states": [state("only", is_initial=True, is_final=True)]}
        ).spec
        only = spec.states[0]
        assert (only.enabled, only.description, spec.actions) == (True, "", [])


class TestGraphErrors:
    @pytest.mark.parametrize(
        ("states", "actions", "expected"),
        [
            pytest.param([state("a"), state("b")], [], {("states", "no_initial_state")},
                         id="no initial state"),
            pytest.param([state("a", is_initial=True), state("b", is_initial=True)], [],
                         {("states[1].is_initial", "multiple_initial_states")},
                         id="two initial states"),
            pytest.param([state("a", is_initial=True), state("a")], [],
                         {("states[1].id", "duplicate_state_id")}, id="duplicate state id"),
            pytest.param([state("a", is_initial=True), state("b", is_final=True)],
                         [action("go", ["a"], "b"), action("go", ["a"], "b")],
                         {("actions[1].id", "duplicate_action_id")}, id="duplicate action id"),
            pytest.param([state("a", is_initial=True)], [action("go", ["nowhere"], "a")],
                         {("actions[0].from_states[0]", "unknown_state")},
                         id="unknown source state"),
            pytest.param([state("a", is_initial=True)], [action("go", ["a"], "nowhere")],
                         {("actions[0].to_state", "unknown_state")}, id="unknown target state"),
            pytest.param([state("a", is_initial=True), state("b", is_final=True)],
                         [action("go", ["a"], "b"), action("back", ["b"], "a")],
                         {("actions[1].from_states[0]", "action_from_final_state")},
                         id="action leaves a final state"),
            pytest.param([state("a", is_initial=True, enabled=False)], [],
                         {("states[0].enabled", "initial_state_disabled")},
                         id="initial state disabled"),
            pytest.param([state("a", is_initial=True), state("b", is_final=True)],
                         [action("go", ["a", "a"], "b")],
                         {("actions[0].from_states[1]", "duplicate_from_state")},
                         id="source listed twice"),
        ],
    )
    def test_rule(self, states: list[Any], actions: list[Any], expected: set[Any]) -> None:
        """Each graph rule has its own code and points at the offending value."""
        document = {"id": "g", "name": "G", "states": states, "actions": actions}
        assert problems(document) == expected

    def test_reports_every_problem_at_once(self) -> None:
        """Shape and graph problems come back together, from every element."""
        document = {
            "id": "bad id!", "name": "X",
            "states": [state("a"), state("a", isInitial=True, is_final="yes")],
            "actions": [action("go", ["a", "zz"], "q"), {"id": "x", "name": "x"}],
        }
        assert problems(document) == {
            ("id", "invalid_id"),
            ("states[1].is_final", "wrong_type"),
            ("states[1].id", "duplicate_state_id"),
            ("actions[0].from_states[1]", "unknown_state"),
            ("actions[0].to_state", "unknown_state"),
            ("actions[1].from_states", "missing_field"),
            ("actions[1].to_state", "missing_field"),
        }


class TestShapeErrors:
    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            pytest.param([], {("$", "wrong_type")}, id="not an object"),
            pytest.param({"name": "x", "states": [state("a", is_initial=True)]},
                         {("id", "missing_field")}, id="missing id"),
            pytest.param(approval(id="a/b"), {("id", "invalid_id")}, id="slash in id"),
            pytest.param(approval(id="x" * 65), {("id", "invalid_id")}, id="id too long"),
            pytest.param(approval(id="\u00e9t\u00e9"), {("id", "invalid_id")}, id="unicode id"),
            pytest.param(approval(id="a\x00b"), {("id", "invalid_id")}, id="NUL in id"),
            pytest.param(approval(extra=1), {("extra", "unknown_field")}, id="unknown field"),
            pytest.param(approval(name=5), {("name", "wrong_type")}, id="number as name"),
            pytest.param(approval(name=""), {("name", "too_short")}, id="empty name"),
            pytest.param(approval(states="a,b"), {("states", "wrong_type")},
                         id="states not a list"),
            pytest.param(approval(states=[]), {("states", "too_short")}, id="no states"),
        ],
    )
    def test_rule(self, document: Any, expected: set[Any]) -> None:
        """Wrong types, bad ids and unknown fields are refused with their path."""
        assert expected <= problems(document)

    def test_paths_use_the_documented_names_for_camel_case_input(self) -> None:
        """A bad camelCase field is reported under its snake_case name."""
        document = approval()
        document["actions"][0] = {"id": "go", "name": "Go", "fromStates": "draft",
                                  "toState": 3, "someThing": 1}
        assert problems(document) >= {
            ("actions[0].from_states", "wrong_type"),
            ("actions[0].to_state", "wrong_type"),
            ("actions[0].someThing", "unknown_field"),
        }

    def test_booleans_are_not_coerced(self) -> None:
        """'true' is a string, not a boolean: strict types, no guessing."""
        document = approval()
        document["states"][0]["is_initial"] = "true"
        assert ("states[0].is_initial", "wrong_type") in problems(document)

    def test_too_many_states(self) -> None:
        """Past the state limit, one clear error instead of hundreds."""
        many = [state(f"s{i}", is_initial=i == 0) for i in range(MAX_STATES + 1)]
        assert problems({"id": "big", "name": "Big", "states": many}) >= {
            ("states", "too_many_states")
        }

    def test_too_many_actions(self) -> None:
        """Past the action limit too."""
        states = [state("a", is_initial=True)]
        actions = [action(f"a{i}", ["a"], "a") for i in range(MAX_ACTIONS + 1)]
        found = problems({"id": "big", "name": "Big", "states": states, "actions": actions})
        assert ("actions", "too_many_actions") in found


class TestWarnings:
    def test_dead_end_and_no_final_state(self) -> None:
        """A non-final state with no way out, and no final state in reach."""
        validated = validate_definition({
            "id": "w", "name": "W",
            "states": [state("a", is_initial=True), state("b")],
            "actions": [action("go", ["a"], "b")],
        })
        assert {(w.path, w.code) for w in validated.warnings} == {
            ("states[1]", "dead_end_state"),
            ("states", "no_final_state_reachable"),
        }

    def test_disabled_actions_do_not_make_states_reachable(self) -> None:
        """Reachability follows only what can fire."""
        validated = validate_definition({
            "id": "w", "name": "W",
            "states": [state("a", is_initial=True), state("b", is_final=True)],
            "actions": [action("go", ["a"], "b", enabled=False)],
        })
        codes = {w.code for w in validated.warnings}
        assert codes == {"unreachable_state", "dead_end_state", "no_final_state_reachable"}

    def test_no_graph_warnings_from_a_partly_read_document(self) -> None:
        """A shape error hides part of the graph: warnings about it would mislead."""
        document = approval()
        document["actions"][0]["name"] = 5
        assert problems(document, strict=True) == {("actions[0].name", "wrong_type")}

    def test_strict_turns_warnings_into_errors(self) -> None:
        """With strict, a definition with warnings is refused with them as errors."""
        assert problems(approval(), strict=True) == {
            ("actions[5].to_state", "action_into_disabled_state"),
            ("states[4]", "unreachable_state"),
        }
