"""The filter block: every operator, and agreement with the guards' scalar evaluation."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow_engine.blocks import BlockContext, MissingColumns
from workflow_engine.blocks.filtering import Filter, mask
from workflow_engine.core.conditions import ColumnCondition, Operator, evaluate

VALUES = ["Ariglad Inc", "ariglad", "Northwind", "", None, "  ", "10", "9.5", "1e2",
          "-3", "true", "No", "YES", "0", "abc123", "x_1"]


def rows(condition: dict[str, Any], values: list[Any] = VALUES) -> list[Any]:
    """The values of the rows that pass."""
    table = pd.DataFrame({"v": pd.Series(values, dtype="str")})
    spec = ColumnCondition(column="v", **condition)
    return [value for value, keep in zip(values, mask(table, spec), strict=True) if keep]


class TestOperators:
    @pytest.mark.parametrize(
        ("condition", "expected"),
        [
            ({"operator": "equals", "value": "ariglad"}, ["ariglad"]),
            ({"operator": "equals", "value": "ARIGLAD", "case_sensitive": True}, []),
            ({"operator": "equals", "value": 10}, ["10"]),
            ({"operator": "equals", "value": 100}, ["1e2"]),
            ({"operator": "contains", "value": "ARIGLAD"}, ["Ariglad Inc", "ariglad"]),
            ({"operator": "contains", "value": "Ariglad", "case_sensitive": True},
             ["Ariglad Inc"]),
            ({"operator": "starts_with", "value": "north"}, ["Northwind"]),
            ({"operator": "ends_with", "value": "123"}, ["abc123"]),
            ({"operator": "gt", "value": 9.5}, ["10", "1e2"]),
            ({"operator": "gte", "value": "9.5"}, ["10", "9.5", "1e2"]),
            ({"operator": "lt", "value": 0}, ["-3"]),
            ({"operator": "lte", "value": 0}, ["-3", "0"]),
            ({"operator": "in", "value": ["northwind", 10, "x_1"]}, ["Northwind", "10", "x_1"]),
            ({"operator": "is_empty"}, ["", None, "  "]),
            ({"operator": "is_true"}, ["true", "YES"]),
            ({"operator": "is_false"}, ["No", "0"]),
            ({"operator": "matches", "value": "^[a-z]+[0-9]+$"}, ["abc123"]),
            ({"operator": "matches", "value": "INC$"}, ["Ariglad Inc"]),
        ],
    )
    def test_operator(self, condition: dict[str, Any], expected: list[Any]) -> None:
        """Each operator keeps exactly the rows it describes."""
        assert rows(condition) == expected

    @pytest.mark.parametrize(
        ("operator", "kept"),
        [("not_equals", "equals"), ("not_contains", "contains"), ("not_in", "in"),
         ("is_not_empty", "is_empty")],
    )
    def test_negations_keep_exactly_the_others(self, operator: str, kept: str) -> None:
        value = None if operator == "is_not_empty" else (
            ["ariglad"] if operator == "not_in" else "ariglad")
        positive = rows({"operator": kept, "value": value})
        negative = rows({"operator": operator, "value": value})
        assert sorted(map(str, positive + negative)) == sorted(map(str, VALUES))

    def test_a_regex_bomb_runs_in_linear_time(self) -> None:
        """RE2 has no backtracking: the classic (a+)+$ on a long near-match is instant."""
        values = ["a" * 5000 + "b"] * 200
        assert rows({"operator": "matches", "value": "(a+)+$"}, values) == []

    @pytest.mark.parametrize(
        ("condition", "words"),
        [
            ({"operator": "matches", "value": "(unclosed"}, "not a valid RE2 pattern"),
            ({"operator": "matches", "value": r"(a)\1"}, "not a valid RE2 pattern"),
            ({"operator": "matches", "value": "a" * 501}, "1 to 500 characters"),
            ({"operator": "gt", "value": "ten"}, "compares numbers"),
            ({"operator": "in", "value": "x"}, "needs a list"),
            ({"operator": "equals"}, "needs a single value"),
            ({"operator": "is_empty", "value": 1}, "takes no value"),
            ({"operator": "like", "value": "x"}, "Input should be"),
        ],
    )
    def test_bad_conditions_are_refused_when_defined(
        self, condition: dict[str, Any], words: str
    ) -> None:
        with pytest.raises(ValueError, match=words.replace("(", r"\(")):
            ColumnCondition(column="v", **condition)


class TestFilterBlock:
    def test_all_and_any(self, context: BlockContext) -> None:
        table = pd.DataFrame({"company": ["Ariglad Inc", "Ariglad Inc", "Other"],
                              "email": ["a@x", None, "c@x"]})
        both = Filter(Filter.Params.model_validate({"conditions": [
            {"column": "company", "operator": "contains", "value": "ariglad"},
            {"column": "email", "operator": "is_not_empty"}]}))
        either = Filter(Filter.Params.model_validate({"match": "any", "conditions": [
            {"column": "company", "operator": "equals", "value": "other"},
            {"column": "email", "operator": "is_empty"}]}))
        assert both(table, context)["email"].tolist() == ["a@x"]
        assert either(table, context)["company"].tolist() == ["Ariglad Inc", "Other"]

    def test_a_missing_column_names_what_is_there(self, context: BlockContext) -> None:
        block = Filter(Filter.Params.model_validate({"conditions": [
            {"column": "comapny", "operator": "contains", "value": "x"}]}))
        with pytest.raises(MissingColumns) as caught:
            block(pd.DataFrame({"company": ["x"], "email": ["y"]}), context)
        assert caught.value.detail == (
            "filter: no column 'comapny'; the table has 'company', 'email'.")


JSON_VALUES: list[Any] = [{"https://a.example": "a source"}, {}, [], None, ["Python", "Go"],
                          "plain text"]


class TestListsAndObjects:
    @pytest.mark.parametrize(("condition", "expected"), [
        ({"operator": "is_not_empty"},
         [{"https://a.example": "a source"}, ["Python", "Go"], "plain text"]),
        ({"operator": "is_empty"}, [{}, [], None]),
        ({"operator": "contains", "value": "a.example"}, [{"https://a.example": "a source"}]),
        ({"operator": "contains", "value": "python"}, [["Python", "Go"]]),
        ({"operator": "equals", "value": "go"}, [["Python", "Go"]]),
        ({"operator": "starts_with", "value": "plain"}, ["plain text"]),
    ])
    def test_a_column_of_json_values(self, condition: dict[str, Any], expected: list[Any]) -> None:
        """Judged as the guards judge a value: a list by its elements, an object by its
        JSON text."""
        table = pd.DataFrame({"v": pd.Series(JSON_VALUES, dtype=object)})
        spec = ColumnCondition(column="v", **condition)
        kept = mask(table, spec)
        assert [v for v, keep in zip(JSON_VALUES, kept, strict=True) if keep] == expected
        assert kept.tolist() == [evaluate(spec, value) for value in JSON_VALUES]


texts = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "true", "No", "y", "0", "1", "1.0", "-2", "1e3", " 7 ", "abc",
                     "ABC", "Abc def", "İ", "ß"]),
    st.text(alphabet="aAbB01 .-e+", max_size=6),
)
scalars = st.one_of(st.sampled_from(["abc", "a", "", "1", "1.0", "B", "e"]),
                    st.integers(-3, 3), st.floats(-5, 5, allow_nan=False))


@st.composite
def conditions(draw: st.DrawFn) -> ColumnCondition:
    operator = draw(st.sampled_from(list(Operator)))
    value: Any = None
    if operator in (Operator.IN, Operator.NOT_IN):
        value = draw(st.lists(scalars, min_size=1, max_size=3))
    elif operator in (Operator.GT, Operator.GTE, Operator.LT, Operator.LTE):
        value = draw(st.one_of(st.integers(-3, 3), st.sampled_from(["1.5", "0"])))
    elif operator is Operator.MATCHES:
        value = draw(st.sampled_from(["^a", "b$", "[0-9]+", "A.C", "^$"]))
    elif operator not in (Operator.IS_EMPTY, Operator.IS_NOT_EMPTY, Operator.IS_TRUE,
                          Operator.IS_FALSE):
        value = draw(scalars)
    return ColumnCondition(column="v", operator=operator, value=value,
                           case_sensitive=draw(st.booleans()))


@settings(max_examples=400, deadline=None)
@given(condition=conditions(), values=st.lists(texts, min_size=1, max_size=8))
def test_the_filter_agrees_with_the_guards(condition: ColumnCondition, values: list[Any]) -> None:
    """Row by row, the vectorised filter decides exactly as the scalar evaluation does."""
    table = pd.DataFrame({"v": pd.Series(values, dtype="str")})
    vectorised = mask(table, condition).tolist()
    scalar = [evaluate(condition, value) for value in values]
    assert vectorised == scalar
