"""The static pass over blocks: a table where one is needed, the columns a block names,
and what is known of each state's table."""

from __future__ import annotations

import json
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import DEFINITIONS, ROOT
from workflow_engine.blocks import Catalog
from workflow_engine.core import check_definition, validate_definition
from workflow_engine.core.dataflow import (
    MAX_POSSIBILITIES,
    NO_TABLE,
    StateTables,
    TableKnowledge,
)
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


def tables(catalog: Catalog, document: dict[str, Any]) -> dict[str, StateTables]:
    """Each state's table, as the check of ``document`` traced it."""
    found = check_definition(document, catalog=catalog).state_tables()
    assert found is not None
    return found


LEADS = ("name", "company", "email")
ENRICH = {"type": "enrich_lead", "params": {"struct": {
    "education": "Where they studied",
    "is_american_education": {"description": "Studied in the US?", "type": "bool"}}}}


class TestTableKnowledge:
    @pytest.mark.parametrize(
        ("possibilities", "no_table", "known", "columns"),
        [
            ([], False, (), None),
            ([NO_TABLE], True, (), None),
            ([None], False, (None,), None),
            ([("a", "b")], False, (("a", "b"),), ("a", "b")),
            ([("a", "b", "c"), ("c", "a")], False, (("a", "b", "c"), ("c", "a")), ("a", "c")),
            ([NO_TABLE, ("a",)], True, (("a",),), ("a",)),
            ([("a",), None], False, (("a",), None), None),
            ([()], False, ((),), ()),
        ],
    )
    def test_possibilities_and_the_columns_certainly_there(
        self, possibilities: list[Any], no_table: bool, known: tuple[Any, ...],
        columns: tuple[str, ...] | None,
    ) -> None:
        """No table yet, unknown columns (None) and known columns stay apart; the certain
        columns are those of every table, in the first one's order."""
        knowledge = TableKnowledge.of(possibilities)
        assert (knowledge.no_table, knowledge.tables, knowledge.columns) == (
            no_table, known, columns)


class TestStateTables:
    def test_a_read_makes_the_files_header_and_a_filter_passes_it_on(
        self, catalog: Catalog
    ) -> None:
        found = tables(catalog, pipeline(READ, filter_on("company")))
        assert found["ready"] == StateTables(TableKnowledge(True, ()), TableKnowledge(True, ()))
        assert found["s0"].arriving == TableKnowledge(True, ())
        assert found["s0"].leaving.columns == LEADS
        assert found["s1"].arriving.columns == found["s1"].leaving.columns == LEADS
        assert found["done"].arriving.columns == LEADS
        assert list(found) == ["ready", "s0", "s1", "done"]

    def test_an_enrichment_adds_its_struct_fields_and_its_own_columns(
        self, catalog: Catalog
    ) -> None:
        found = tables(catalog, pipeline(READ, ENRICH, filter_on("is_american_education")))
        assert found["s1"].arriving.columns == LEADS
        assert found["s1"].leaving.columns == (
            *LEADS, "education", "is_american_education", "enrich_confidence_score",
            "enrich_notes", "enrich_references", "enrich_error")
        assert found["s2"].arriving == found["s1"].leaving

    def test_a_file_that_is_not_there_makes_unknown_columns(self, catalog: Catalog) -> None:
        """Unknown is not empty: a table is there, its columns cannot be known yet; what
        follows a block that adds columns to an unknown table is unknown too."""
        found = tables(catalog, pipeline(READ_MISSING, ENRICH))
        unknown = TableKnowledge(False, (None,))
        assert found["s0"].leaving == found["s1"].arriving == found["s1"].leaving == unknown
        assert unknown.columns is None

    def test_select_columns_makes_its_columns_under_their_new_names(
        self, catalog: Catalog
    ) -> None:
        select = {"type": "select_columns",
                  "params": {"columns": ["email", "name"], "rename": {"email": "work_email"}}}
        found = tables(catalog, pipeline(READ_MISSING, select))
        assert found["s1"].arriving.columns is None
        assert found["s1"].leaving.columns == ("work_email", "name")

    def test_a_filter_on_a_missing_column_is_an_error_and_its_columns_are_still_told(
        self, catalog: Catalog
    ) -> None:
        """The form can offer the columns that are there beside the error."""
        checked = check_definition(pipeline(READ, filter_on("phone")), catalog=catalog)
        assert not checked.valid
        assert [(p.path, p.code) for p in checked.errors] == [
            ("states[2].block.params", "unknown_column")]
        found = checked.state_tables()
        assert found is not None
        assert found["s1"].arriving.columns == LEADS

    def test_paths_that_differ_give_each_possibility_and_what_is_certain(
        self, catalog: Catalog
    ) -> None:
        select = {"type": "select_columns", "params": {"columns": ["company", "name"]}}
        document = pipeline(READ, select, filter_on("name"))
        document["actions"].append({"id": "skip", "name": "skip", "from_states": ["s0"],
                                    "to_state": "s2"})
        document["actions"].append({"id": "early", "name": "early", "from_states": ["ready"],
                                    "to_state": "s2"})
        arriving = tables(catalog, document)["s2"].arriving
        assert arriving.no_table
        assert set(arriving.tables) == {("company", "name"), LEADS}
        assert arriving.columns is not None
        assert set(arriving.columns) == {"company", "name"}

    def test_past_the_possibilities_tracked_the_columns_become_unknown(
        self, catalog: Catalog
    ) -> None:
        """More shapes than MAX_POSSIBILITIES reaching one state: the check gives up on
        their columns, and says so."""
        document = pipeline(READ)
        subsets = [combo for size in (1, 2) for combo in combinations(LEADS, size)]
        subsets += [LEADS, ("email", "company", "name"), ("company", "name", "email")]
        assert len(subsets) > MAX_POSSIBILITIES
        document["states"].append({"id": "join", "name": "Join"})
        for index, columns in enumerate(subsets):
            document["states"].append({"id": f"pick{index}", "name": "Pick", "block": {
                "type": "select_columns", "params": {"columns": list(columns)}}})
            document["actions"] += [
                {"id": f"pick{index}", "name": "Pick", "from_states": ["s0"],
                 "to_state": f"pick{index}"},
                {"id": f"join{index}", "name": "Join", "from_states": [f"pick{index}"],
                 "to_state": "join"}]
        found = tables(catalog, document)
        assert found["join"].arriving == TableKnowledge(False, (None,))
        assert found["pick0"].leaving.columns == ("name",)

    def test_an_on_error_state_gets_the_failed_blocks_input(self, catalog: Catalog) -> None:
        document = pipeline(READ, filter_on("company"))
        document["states"][2]["on_error"] = "fix"
        document["states"].append({"id": "fix", "name": "Fix"})
        document["actions"].append({"id": "fixed", "name": "fixed", "from_states": ["fix"],
                                    "to_state": "done"})
        found = tables(catalog, document)
        assert found["fix"].arriving.columns == LEADS
        assert found["fix"].arriving.tables == (LEADS,)

    def test_states_with_the_same_block_and_input_share_its_work(
        self, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Five reads of one file, each straight after the start: one header read."""
        calls: list[str] = []
        original = catalog.columns_after

        def counting(spec: Any, columns: list[str] | None) -> list[str] | None:
            calls.append(spec.type)
            return original(spec, columns)

        monkeypatch.setattr(catalog, "columns_after", counting)
        document = pipeline(READ)
        for index in range(5):
            document["states"].append({"id": f"again{index}", "name": "Again", "block": READ})
            document["actions"].append({"id": f"again{index}", "name": "Again",
                                        "from_states": ["ready"], "to_state": f"again{index}"})
        found = tables(catalog, document)
        assert calls == ["read_csv"]
        assert {found[f"again{index}"].leaving.columns for index in range(5)} == {LEADS}

    def test_a_state_no_path_reaches_has_no_possibilities(self, catalog: Catalog) -> None:
        document = pipeline(READ)
        document["states"].append({"id": "lost", "name": "Lost", "block": filter_on("x")})
        found = tables(catalog, document)
        assert found["lost"] == StateTables(TableKnowledge(False, ()), TableKnowledge(False, ()))

    def test_disabled_actions_carry_nothing(self, catalog: Catalog) -> None:
        document = pipeline(READ)
        document["actions"][0]["enabled"] = False
        assert tables(catalog, document)["s0"].arriving == TableKnowledge(False, ())

    def test_no_tables_are_traced_over_a_broken_graph(self, catalog: Catalog) -> None:
        document = pipeline(READ)
        document["actions"][0]["to_state"] = "nowhere"
        checked = check_definition(document, catalog=catalog)
        assert [(p.path, p.code) for p in checked.errors] == [
            ("actions[0].to_state", "unknown_state")]
        assert checked.state_tables() is None

    def test_tables_are_traced_over_what_a_broken_shape_leaves(self, catalog: Catalog) -> None:
        """A typo in one state keeps the other states' columns in view."""
        document = pipeline(READ, filter_on("company"))
        document["states"][2]["colour"] = "red"
        checked = check_definition(document, catalog=catalog)
        assert [(p.path, p.code) for p in checked.errors] == [
            ("states[2].colour", "unknown_field")]
        found = checked.state_tables()
        assert found is not None
        assert found["s1"].arriving.columns == LEADS

    def test_strict_moves_warnings_to_errors_and_keeps_the_tables(
        self, catalog: Catalog
    ) -> None:
        document = pipeline(READ, filter_on("company"))
        document["states"].append({"id": "lost", "name": "Lost"})
        lenient = check_definition(document, catalog=catalog)
        strict = check_definition(document, catalog=catalog, strict=True)
        assert lenient.valid
        assert not strict.valid
        assert strict.errors == lenient.warnings
        assert strict.warnings == ()
        assert strict.state_tables() == lenient.state_tables()


class TestShippedDefinitions:
    @pytest.fixture
    def shipped_catalog(self) -> Catalog:
        """The catalog a server has with the shipped samples (data/)."""
        return Catalog(LocalArea(ROOT / "data"))

    @pytest.mark.parametrize("path", sorted(DEFINITIONS.glob("*.json")), ids=lambda p: p.stem)
    def test_every_shipped_definition_is_valid_with_known_columns(
        self, shipped_catalog: Catalog, path: Path
    ) -> None:
        """Every table any state of a shipped definition may get has known columns."""
        checked = check_definition(json.loads(path.read_text()), catalog=shipped_catalog)
        assert checked.valid, checked.errors
        found = checked.state_tables()
        assert found is not None
        for state_id, known in found.items():
            for knowledge in (known.arriving, known.leaving):
                assert None not in knowledge.tables, state_id

    def test_the_education_pipeline_knows_each_steps_columns(
        self, shipped_catalog: Catalog
    ) -> None:
        document = json.loads((DEFINITIONS / "ariglad-education.json").read_text())
        found = tables(shipped_catalog, document)
        header = ("name", "company", "email", "company_location", "linkedin")
        assert found["reading"].arriving == TableKnowledge(True, ())
        assert found["at_ariglad"].arriving.columns == header
        researched = found["researching"].leaving.columns
        assert researched is not None
        assert researched[:5] == header
        assert {"educational_background", "undergraduate_university",
                "is_american_education", "enrich_error"} <= set(researched)
        assert found["american"].arriving.columns == researched
        assert found["saved"].leaving.columns == researched


COLUMN_POOL = ["name", "company", "email", "phone", "work_email", "education"]
BLOCK_POOL: list[dict[str, Any] | None] = [
    None, READ, READ_MISSING, ENRICH,
    {"type": "select_columns", "params": {"columns": ["name", "email"],
                                          "rename": {"email": "work_email"}}},
    {"type": "select_columns", "params": {"columns": ["company"]}},
    {"type": "save_csv", "params": {"file_name": "out.csv"}},
    *[filter_on(column) for column in COLUMN_POOL],
]


@st.composite
def pipelines(draw: st.DrawFn) -> dict[str, Any]:
    """Random graphs of blocks without graph errors (so the block pass always runs): a
    chain from the initial state through every state to the final one, and actions at
    random across it (some disabled)."""
    count = draw(st.integers(min_value=1, max_value=7))
    states: list[dict[str, Any]] = [{"id": "ready", "name": "Ready", "is_initial": True}]
    for index in range(count):
        state: dict[str, Any] = {"id": f"s{index}", "name": f"S{index}"}
        block = draw(st.sampled_from([READ] if index == 0 else BLOCK_POOL))
        if block is not None:
            state["block"] = block
        states.append(state)
    states.append({"id": "done", "name": "Done", "is_final": True})
    ids = [state["id"] for state in states]
    actions = [{"id": f"c{index}", "name": "c", "from_states": [source], "to_state": target}
               for index, (source, target) in enumerate(pairwise(ids))]
    actions += [
        {"id": f"a{index}", "name": "a", "enabled": draw(st.booleans()),
         "from_states": draw(st.lists(st.sampled_from(ids[:-1]), min_size=1, max_size=2,
                                      unique=True)),
         "to_state": draw(st.sampled_from(ids[1:]))}
        for index in range(draw(st.integers(min_value=0, max_value=8)))
    ]
    return {"id": "random", "name": "Random", "states": states, "actions": actions}


@pytest.fixture(scope="module")
def shared_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """A catalog for every example of a property (hypothesis runs them in one call)."""
    root = tmp_path_factory.mktemp("files")
    (root / "leads.csv").write_text("name,company,email\nAnn,A,\n")
    return Catalog(LocalArea(root))


@settings(max_examples=200, deadline=None)
@given(document=pipelines())
def test_what_is_told_of_each_table_agrees_with_the_problems_found(
    shared_catalog: Catalog, document: dict[str, Any],
) -> None:
    """A filter's column is an error where every table that may arrive has known columns
    and lacks it, a warning where only some lack it, and neither where it is certainly
    there; a block needing a table is judged by no_table; and what leaves a state arrives
    in every state an action leads to from it."""
    checked = check_definition(document, catalog=shared_catalog)
    found = checked.state_tables()
    assert found is not None
    problems = {(p.path, p.code) for p in (*checked.errors, *checked.warnings)}
    assert found["ready"].arriving == TableKnowledge(True, ())
    for index, state in enumerate(document["states"]):
        known = found[state["id"]]
        block = state.get("block")
        path = f"states[{index}].block"
        reached = known.arriving.no_table or bool(known.arriving.tables)
        if block is None or not reached:
            continue
        if block["type"] == "filter":
            column = block["params"]["conditions"][0]["column"]
            tables = known.arriving.tables
            lacking = [t for t in tables if t is not None and column not in t]
            assert ((f"{path}.params", "unknown_column") in problems) == (
                bool(lacking) and len(lacking) == len(tables))
            assert ((f"{path}.params", "column_may_be_missing") in problems) == (
                bool(lacking) and len(lacking) < len(tables))
            if known.arriving.columns is not None and column in known.arriving.columns:
                assert not lacking
        if block["type"] != "read_csv":
            assert ((path, "block_needs_table") in problems) == known.arriving.no_table
    states = {state["id"]: state for state in document["states"]}
    for action in document["actions"]:
        if not action.get("enabled", True):
            continue
        arriving = found[action["to_state"]].arriving
        for source in action["from_states"]:
            leaving = found[source].leaving
            assert leaving.no_table <= arriving.no_table
            assert all(t in arriving.tables for t in leaving.tables) or (
                None in arriving.tables), (source, action["to_state"], states[source])

