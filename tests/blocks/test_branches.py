"""The fork's join, on generated branches: columns written by one branch each are joined
by row, exactly as the static check predicts; a column written by two is refused before
anything runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow_engine.blocks import BlockContext, Catalog
from workflow_engine.blocks.branches import Branches
from workflow_engine.core import BlockSpec
from workflow_engine.storage import LocalArea

# Branches write some of these; "a" is also a column of the input, which a branch may
# overwrite. "b" is what every expression reads, so no branch ever writes it.
POOL = ["a", "x", "y", "z", "w"]
INPUT = pd.DataFrame({"a": ["1", "2", "3"], "b": ["p", "q", "r"]})

column_sets = st.lists(st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True),
                       min_size=2, max_size=4)


def fork(catalog: Catalog, column_sets: list[list[str]]) -> Branches:
    spec = BlockSpec(type="branches", params={"branches": [
        {"id": f"br{i}", "block": {"type": "compute", "params": {
            "prefix": f"br{i}", "columns": {c: f"b + '/{i}/{c}'" for c in columns}}}}
        for i, columns in enumerate(column_sets)]})
    block = catalog.build(spec)
    assert isinstance(block, Branches)
    return block


def first_conflict(column_sets: list[list[str]]) -> tuple[int, str] | None:
    """The branch (by index) that first writes a column an earlier branch writes."""
    writers: dict[str, int] = {}
    for index, columns in enumerate(column_sets):
        for column in columns:
            if writers.setdefault(column, index) != index:
                return index, column
    return None


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column_sets=column_sets)
def test_disjoint_branches_join_by_row_and_overlaps_are_refused(
    tmp_path: Path, context: BlockContext, column_sets: list[list[str]],
) -> None:
    catalog = Catalog(LocalArea(tmp_path / "files"))
    block = fork(catalog, column_sets)
    problems = block.check_parts("states[1].block.params")
    conflict = first_conflict(column_sets)
    if conflict is not None:
        index, column = conflict
        assert problems, column_sets
        assert (problems[0].path, problems[0].code) == (
            f"states[1].block.params.branches[{index}].block.params", "branch_column_conflict")
        assert f"'{column}'" in problems[0].message
        return
    assert problems == []
    run = replace(context, details={})
    joined = block(INPUT.copy(), run)
    # The input's columns, then each branch's new ones: what the static check predicted.
    assert list(joined.columns) == block.columns_after(list(INPUT.columns), catalog.files)
    assert len(joined) == len(INPUT)
    for index, columns in enumerate(column_sets):
        for column in columns:
            assert list(joined[column]) == [f"{b}/{index}/{column}" for b in INPUT["b"]]
        assert joined[f"br{index}_error"].isna().all()
    written = {c for columns in column_sets for c in columns}
    if "a" not in written:
        assert list(joined["a"]) == list(INPUT["a"])
    assert list(joined["b"]) == list(INPUT["b"])
    assert [(b, s["status"]) for b, s in run.details["branches"].items()] == [
        (f"br{index}", "succeeded") for index in range(len(column_sets))]
