"""A misspelt field is refused with the field that was probably meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import approval
from workflow_engine.blocks import Catalog
from workflow_engine.core import validate_definition
from workflow_engine.errors import DefinitionInvalid
from workflow_engine.storage import LocalArea

STATES = [{"id": "ready", "name": "Ready", "is_initial": True},
          {"id": "done", "name": "Done", "is_final": True}]
ACTIONS = [{"id": "go", "name": "Go", "from_states": ["ready"], "to_state": "done"}]


def messages(document: Any, tmp_path: Path) -> dict[str, str]:
    """Path -> message of every unknown-field error in ``document``."""
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(document, catalog=Catalog(LocalArea(tmp_path)))
    return {p.path: p.message for p in caught.value.errors if p.code == "unknown_field"}


def with_state(**fields: Any) -> dict[str, Any]:
    return {"id": "d", "name": "D", "actions": ACTIONS,
            "states": [STATES[0], {**STATES[1], **fields}]}


FILTER = {"column": "name", "operator": "is_empty"}


class TestDefinitionTypos:
    @pytest.mark.parametrize(("document", "path", "meant"), [
        pytest.param(with_state(is_inital=False), "states[1].is_inital", "is_initial",
                     id="state flag"),
        pytest.param(with_state(isFinl=True), "states[1].isFinl", "is_final",
                     id="camelCase state flag"),
        pytest.param({"id": "d", "name": "D", "states": STATES,
                      "actions": [{**ACTIONS[0], "form_states": ["ready"]}]},
                     "actions[0].form_states", "from_states", id="action sources"),
        pytest.param({"id": "d", "name": "D", "states": STATES, "actions": ACTIONS,
                      "descripton": "x"}, "descripton", "description", id="top level"),
        pytest.param(with_state(block={"type": "filter", "parms": {}}),
                     "states[1].block.parms", "params", id="block spec"),
        pytest.param(with_state(block={"type": "filter", "params": {
            "conditions": [FILTER], "mach": "any"}}), "states[1].block.params.mach",
                     "match", id="block params"),
        pytest.param(with_state(block={"type": "filter", "params": {
            "conditions": [{**FILTER, "case_sensitve": True}]}}),
                     "states[1].block.params.conditions[0].case_sensitve",
                     "case_sensitive", id="nested in block params"),
        pytest.param(with_state(block={"type": "enrich_lead", "params": {
            "struct": {"x": {"description": "X", "tpye": "bool"}}}}),
                     "states[1].block.params.struct.x.FieldSpec.tpye", "type",
                     id="union member in block params"),
    ])
    def test_a_close_field_is_suggested(
        self, tmp_path: Path, document: dict[str, Any], path: str, meant: str
    ) -> None:
        assert messages(document, tmp_path)[path] == (
            f"Extra inputs are not permitted; did you mean '{meant}'?")

    @pytest.mark.parametrize("name", ["banana", "x", "colour_of_the_sky"])
    def test_a_far_off_field_gets_no_suggestion(self, tmp_path: Path, name: str) -> None:
        assert messages(approval(**{name: 1}), tmp_path) == {
            name: "Extra inputs are not permitted"}


class TestRequestTypos:
    def test_a_body_field(self, client: FlaskClient, definition: dict[str, Any]) -> None:
        response = client.post("/api/instances", json={"definiton_id": "approval"})
        assert response.status_code == 422
        assert {"path": "definiton_id", "code": "unknown_field",
                "message": "Extra inputs are not permitted; did you mean 'definition_id'?",
                } in response.json["errors"]

    def test_a_query_parameter(self, client: FlaskClient) -> None:
        response = client.get("/api/instances?limt=5")
        assert response.status_code == 400
        assert "did you mean 'limit'?" in response.json["detail"]
