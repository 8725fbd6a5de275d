"""The static pass over blocks: a table where one is needed, the columns a block names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workflow_engine.blocks import Catalog
from workflow_engine.core import validate_definition
from workflow_engine.errors import DefinitionInvalid
from workflow_engine.storage import LocalArea


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    (tmp_path / "leads.csv").write_text("name,company,email\nAnn,A,\n")
    return Catalog(LocalArea(tmp_path))


def pipeline(*blocks: dict[str, Any], on_error: str | None = None) -> dict[str, Any]:
    """ready -> s0 -> s1 ... -> done, each s<i> running a block, each step automatic."""
    states: list[dict[str, Any]] = [{"id": "ready", "name": "Ready", "is_initial": True}]
    actions: list[dict[str, Any]] = []
    previous = "ready"
    for index, block in enumerate(blocks):
        state: dict[str, Any] = {"id": f"s{index}", "name": f"S{index}", "block": block}
        if on_error and index == 0:
            state["on_error"] = on_error
        states.append(state)
        actions.append({"id": f"to_s{index}", "name": "go", "from_states": [previous],
                        "to_state": f"s{index}", "trigger": "manual" if index == 0 else "auto"})
        previous = f"s{index}"
    states.append({"id": "done", "name": "Done", "is_final": True})
    actions.append({"id": "finish", "name": "finish", "from_states": [previous],
                    "to_state": "done", "trigger": "auto"})
    return {"id": "p", "name": "P", "states": states, "actions": actions}


READ = {"type": "read_csv", "params": {"file": "leads.csv"}}
READ_MISSING = {"type": "read_csv", "params": {"file": "later.csv"}}


def filter_on(column: str) -> dict[str, Any]:
    return {"type": "filter", "params": {"conditions": [
        {"column": column, "operator": "is_not_empty"}]}}


def outcome(catalog: Catalog, document: dict[str, Any]) -> tuple[set[Any], set[Any]]:
    """(errors, warnings) as (path, code) pairs."""
    try:
        validated = validate_definition(document, catalog=catalog)
    except DefinitionInvalid as exc:
        return {(p.path, p.code) for p in exc.errors}, set()
    return set(), {(w.path, w.code) for w in validated.warnings}


class TestDataflow:
    def test_a_sound_pipeline_passes_clean(self, catalog: Catalog) -> None:
        assert outcome(catalog, pipeline(READ, filter_on("company"))) == (set(), set())

    def test_a_block_needing_a_table_before_any_read(self, catalog: Catalog) -> None:
        errors, _ = outcome(catalog, pipeline(filter_on("company"), READ))
        assert errors == {("states[1].block", "block_needs_table")}

    def test_a_column_the_file_does_not_have(self, catalog: Catalog) -> None:
        errors, _ = outcome(catalog, pipeline(READ, filter_on("phone")))
        assert errors == {("states[2].block.params", "unknown_column")}

    def test_columns_follow_select_and_rename(self, catalog: Catalog) -> None:
        select = {"type": "select_columns",
                  "params": {"columns": ["email"], "rename": {"email": "work_email"}}}
        assert outcome(catalog, pipeline(READ, select, filter_on("work_email")))[0] == set()
        errors, _ = outcome(catalog, pipeline(READ, select, filter_on("email")))
        assert errors == {("states[3].block.params", "unknown_column")}

    def test_unknown_columns_are_not_judged(self, catalog: Catalog) -> None:
        """A file that is not there yet: its columns are unknown, not wrong."""
        assert outcome(catalog, pipeline(READ_MISSING, filter_on("anything"))) == (set(), set())

    def test_only_some_paths_lacking_a_table_is_a_warning(self, catalog: Catalog) -> None:
        document = pipeline(READ, filter_on("company"))
        document["actions"].append({"id": "skip", "name": "skip", "from_states": ["ready"],
                                    "to_state": "s1"})
        _, warnings = outcome(catalog, document)
        assert ("states[2].block", "block_needs_table") in warnings

    def test_on_error_carries_the_failed_blocks_input(self, catalog: Catalog) -> None:
        """After a failed read there is still no table."""
        document = pipeline(READ, on_error="fix")
        document["states"].append({"id": "fix", "name": "Fix", "block": filter_on("x")})
        document["actions"].append({"id": "fixed", "name": "fixed", "from_states": ["fix"],
                                    "to_state": "done"})
        errors, _ = outcome(catalog, document)
        assert ("states[3].block", "block_needs_table") in errors

    @pytest.mark.parametrize(
        ("block", "expected"),
        [
            ({"type": "nope", "params": {}}, ("states[1].block.type", "unknown_block_type")),
            ({"type": "read_csv", "params": {}},
             ("states[1].block.params.file", "missing_field")),
            ({"type": "read_csv", "params": {"file": "../x.csv"}},
             ("states[1].block.params.file", "invalid_format")),
            ({"type": "filter", "params": {"conditions": [
                {"column": "a", "operator": "matches", "value": "("}]}},
             ("states[1].block.params.conditions[0]", "value_error")),
            ({"type": "read_csv", "params": {"file": "leads.csv", "extra": 1}},
             ("states[1].block.params.extra", "unknown_field")),
        ],
    )
    def test_block_params_are_checked_with_their_path(
        self, catalog: Catalog, block: dict[str, Any], expected: tuple[str, str]
    ) -> None:
        errors, _ = outcome(catalog, pipeline(block))
        assert expected in errors

    def test_on_error_rules(self, catalog: Catalog) -> None:
        document = pipeline(READ, on_error="s0")
        assert ("states[1].on_error", "on_error_loop") in outcome(catalog, document)[0]
        document = pipeline(READ, on_error="nowhere")
        assert ("states[1].on_error", "unknown_state") in outcome(catalog, document)[0]

    def test_ambiguous_automatic_actions_are_flagged(self, catalog: Catalog) -> None:
        document = pipeline(READ)
        document["actions"].append({"id": "also", "name": "also", "from_states": ["s0"],
                                    "to_state": "done", "trigger": "auto"})
        assert ("states[1]", "ambiguous_auto_actions") in outcome(catalog, document)[1]
