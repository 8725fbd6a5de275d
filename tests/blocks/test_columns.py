"""select_columns and dedupe."""

from __future__ import annotations

import pandas as pd
import pytest

from workflow_engine.blocks import BlockContext, MissingColumns
from workflow_engine.blocks.columns import Dedupe, SelectColumns

TABLE = pd.DataFrame({
    "name": ["Ann", "ann ", "Bo", "Cy"],
    "email": ["a@x", "a@x", None, "c@x"],
    "company": ["A", "B", "C", "D"],
})


class TestSelectColumns:
    def test_keeps_orders_and_renames(self, context: BlockContext) -> None:
        block = SelectColumns(SelectColumns.Params(columns=["email", "name"],
                                                   rename={"email": "work_email"}))
        out = block(TABLE, context)
        assert list(out.columns) == ["work_email", "name"]
        assert block.columns_after(["name", "email", "company"], context.files) == [
            "work_email", "name"]

    def test_a_missing_column(self, context: BlockContext) -> None:
        with pytest.raises(MissingColumns, match="no column 'phone'"):
            SelectColumns(SelectColumns.Params(columns=["phone"]))(TABLE, context)

    @pytest.mark.parametrize(
        ("params", "words"),
        [({"columns": ["a", "a"]}, "listed twice"),
         ({"columns": ["a"], "rename": {"b": "c"}}, "not kept"),
         ({"columns": ["a", "b"], "rename": {"a": "b"}}, "same name"),
         ({"columns": []}, "at least 1")],
    )
    def test_inconsistent_params(self, params: dict[str, object], words: str) -> None:
        with pytest.raises(ValueError, match=words):
            SelectColumns.Params.model_validate(params)


class TestDedupe:
    def test_ignores_case_and_spaces_by_default(self, context: BlockContext) -> None:
        out = Dedupe(Dedupe.Params(columns=["name"]))(TABLE, context)
        assert out["company"].tolist() == ["A", "C", "D"]

    def test_keep_last_and_case_sensitive(self, context: BlockContext) -> None:
        last = Dedupe(Dedupe.Params(columns=["email"], keep="last"))(TABLE, context)
        exact = Dedupe(Dedupe.Params(columns=["name"], case_sensitive=True))(TABLE, context)
        assert last["company"].tolist() == ["B", "C", "D"]
        assert len(exact) == 4

    def test_rows_missing_a_value_are_never_duplicates(self, context: BlockContext) -> None:
        """Eight leads without an email are eight leads, not one."""
        table = pd.DataFrame({"email": [None, None, "x", "X "]})
        assert len(Dedupe(Dedupe.Params(columns=["email"]))(table, context)) == 3

    def test_lists_and_objects_are_compared_by_value(self, context: BlockContext) -> None:
        """A column of JSON values (unhashable) dedupes; key order does not matter."""
        table = pd.DataFrame({"refs": [{"a": 1, "b": [2]}, {"b": [2], "a": 1}, ["x"], ["x"],
                                       None, "plain"]})
        out = Dedupe(Dedupe.Params(columns=["refs"]))(table, context)
        assert out["refs"].tolist() == [{"a": 1, "b": [2]}, ["x"], None, "plain"]
