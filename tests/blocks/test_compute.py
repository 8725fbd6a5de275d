"""The compute block and its expression language: what parses, what runs, what fails per
row, and that no text ever reaches Python beyond the language."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from workflow_engine.blocks import BLOCKS, BlockContext, BlockError
from workflow_engine.blocks.compute import Compute, ComputeParams
from workflow_engine.blocks.expressions import (
    ExpressionError,
    ExpressionInvalid,
    compile_expression,
)


def compute(columns: dict[str, str], **params: Any) -> Compute:
    return Compute(ComputeParams.model_validate({"columns": columns, **params}))


def value(expression: str, **row: Any) -> Any:
    return compile_expression(expression).evaluator()(row)


LEADS = pd.DataFrame({
    "first": ["Maya", "Jonas", None],
    "last": ["Okafor", "Brandt", "Raman"],
    "undergrad_country": ["United States", "Germany", None],
    "employees": ["120", "0", "abc"],
    "company location": ["Austin, TX", "Berlin", "Seattle, WA"],
}, dtype="string")


class TestParsing:
    @pytest.mark.parametrize(
        ("expression", "line", "column"),
        [
            ("a +* 2", 1, 4),
            ("  (a", 1, 3),
            ("a b", 1, 3),
            ("(first +\n + * last)", 2, 4),
            ("x if y", 1, 1),
        ],
    )
    def test_a_parse_error_names_its_position(self, expression: str, line: int,
                                              column: int) -> None:
        with pytest.raises(ExpressionInvalid, match=f"line {line}, column {column}") as info:
            compile_expression(expression)
        assert (info.value.line, info.value.column) == (line, column)

    @pytest.mark.parametrize(
        ("expression", "reason"),
        [
            ("name.lower()", "attribute access"),
            ("().__class__.__bases__[0].__subclasses__()", "attribute access"),
            ("__import__('os').system('true')", "attribute access"),
            ("__import__('os')", "no function '__import__'"),
            ("eval('1')", "no function 'eval'"),
            ("open('/etc/passwd')", "no function 'open'"),
            ("lambda: 1", "lambda"),
            ("[c for c in name]", "comprehensions"),
            ("f'{name:>999999999}'", "f-strings"),
            ("(x := 1)", "assignment"),
            ("{'a': 1}", "dict literals"),
            ("lower(name, x=1)", "keyword arguments"),
            ("row", 'row["column name"]'),
            ("row[name]", "column name in quotes"),
            ("len", "is a function"),
            ("b'bytes'", "bytes"),
            ("-" * 150 + "1", "nested deeper than 100"),
            ("", "empty"),
            ("x" * 2001, "longer than 2000"),
        ],
    )
    def test_what_the_language_lacks_is_refused(self, expression: str, reason: str) -> None:
        with pytest.raises(ExpressionInvalid) as info:
            compile_expression(expression)
        assert reason in str(info.value)

    def test_the_columns_used_are_the_names_and_the_quoted_keys(self) -> None:
        expression = compile_expression("lower(first) + row['company location'] + first")
        assert expression.columns == ["first", "company location"]


class TestEvaluation:
    @pytest.mark.parametrize(
        ("expression", "row", "expected"),
        [
            ("first + ' ' + last", {"first": "Maya", "last": "Okafor"}, "Maya Okafor"),
            ("country == 'United States'", {"country": "United States"}, True),
            ("country == 'United States'", {"country": None}, False),
            ("country in ('US', 'USA')", {"country": "USA"}, True),
            ("int(employees) * 2 + 1", {"employees": " 60 "}, 121),
            ("float(price) / 4", {"price": "5"}, 1.25),
            ("round(float(x), 1)", {"x": "2.46"}, 2.5),
            ("abs(-3) + min(4, 2, 9) + max(1, 5)", {}, 10),
            ("lower(strip(x))", {"x": "  MiXed "}, "mixed"),
            ("upper(x)[0:3]", {"x": "ariglad"}, "ARI"),
            ("len(x)", {"x": "four"}, 4),
            ("contains(x, 'glad') and startswith(x, 'Ari') and endswith(x, 'Inc')",
             {"x": "Ariglad Inc"}, True),
            ("coalesce(email, backup, 'none')", {"email": " ", "backup": None}, "none"),
            ("str(2.0) + str(True)", {}, "2true"),
            ("'big' if int(n) > 100 else 'small'", {"n": "120"}, "big"),
            ("row['company location']", {"company location": "Austin, TX"}, "Austin, TX"),
            ("email is None", {"email": None}, True),
            ("not x", {"x": ""}, True),
            ("2 ** 10 % 1000", {}, 24),
        ],
    )
    def test_expressions_compute_their_value(self, expression: str, row: dict[str, Any],
                                             expected: Any) -> None:
        assert value(expression, **row) == expected

    @pytest.mark.parametrize(
        ("expression", "row", "code"),
        [
            ("first + ' ' + last", {"first": None, "last": "Raman"}, "missing_value"),
            ("int(n) + 1", {"n": None}, "missing_value"),
            ("100 / int(n)", {"n": "0"}, "division_by_zero"),
            ("int(n)", {"n": "abc"}, "value_error"),
            ("lower(n)", {"n": 5}, "type_error"),
            ("n + 1", {"n": "1"}, "type_error"),
            ("missing + 1", {}, "unknown_column"),
            ("row['nope']", {}, "unknown_column"),
            ("9 ** 9 ** 9", {}, "too_large"),
            ("'ab' * 10 ** 9", {}, "too_large"),
            ("round(5, -10 ** 9)", {}, "value_error"),
            ("x[10]", {"x": "abc"}, "index_error"),
            ("min(1)", {}, "type_error"),
        ],
    )
    def test_a_failing_row_raises_a_coded_error(self, expression: str, row: dict[str, Any],
                                               code: str) -> None:
        with pytest.raises(ExpressionError) as info:
            value(expression, **row)
        assert info.value.code == code


class TestParams:
    def test_a_bad_expression_is_refused_at_its_key(self) -> None:
        with pytest.raises(ValidationError) as info:
            ComputeParams.model_validate({"columns": {"ok": "1", "bad": "a +* 2"}})
        (error,) = info.value.errors()
        assert error["loc"] == ("columns", "bad")
        assert error["type"] == "expression_invalid"
        assert "line 1, column 4" in error["msg"]

    def test_the_error_column_cannot_be_computed(self) -> None:
        with pytest.raises(ValidationError, match="error column"):
            ComputeParams.model_validate({"columns": {"compute_error": "1"}})

    def test_it_is_in_the_catalog(self) -> None:
        assert BLOCKS["compute"] is Compute

    def test_it_requires_what_it_reads_except_what_it_computed_first(self) -> None:
        block = compute({"full": "first + ' ' + last", "shout": "upper(full) + x"})
        assert block.required_columns() == ["first", "last", "x"]

    def test_columns_after_are_the_input_then_the_computed_and_the_error(
        self, context: BlockContext
    ) -> None:
        block = compute({"full": "first", "first": "lower(first)"}, prefix="calc")
        assert block.columns_after(["first", "last"], context.files) == [
            "first", "last", "full", "calc_error"]
        assert block.columns_after(None, context.files) is None


class TestBlock:
    def test_every_row_is_computed_and_failures_go_to_the_error_column(
        self, context: BlockContext
    ) -> None:
        block = compute({
            "full_name": "first + ' ' + last",
            "is_american_education": "undergrad_country == 'United States'",
            "per_head": "1000 / int(employees)",
            "city": "row['company location']",
        }, max_error_ratio=1)
        out = block(LEADS, context)
        assert list(out.columns) == [*LEADS.columns, "full_name", "is_american_education",
                                     "per_head", "city", "compute_error"]
        assert out["full_name"].tolist() == ["Maya Okafor", "Jonas Brandt", pd.NA]
        assert out["is_american_education"].tolist() == [True, False, False]
        assert str(out["is_american_education"].dtype) == "boolean"
        assert out["per_head"].tolist()[0] == pytest.approx(1000 / 120)
        errors = out["compute_error"].tolist()
        assert errors[0] is pd.NA
        assert errors[1].startswith("division_by_zero: per_head:")
        assert errors[2].startswith("missing_value: full_name:")
        assert "value_error: per_head:" in errors[2]

    def test_a_computed_column_may_replace_an_input_column(self, context: BlockContext) -> None:
        out = compute({"last": "upper(last)"})(LEADS, context)
        assert out["last"].tolist() == ["OKAFOR", "BRANDT", "RAMAN"]

    def test_drop_leaves_out_the_failed_rows(self, context: BlockContext) -> None:
        out = compute({"n": "int(employees)"}, on_row_error="drop")(LEADS, context)
        assert out["n"].tolist() == [120, 0]

    def test_fail_fails_the_block_on_one_bad_row(self, context: BlockContext) -> None:
        with pytest.raises(BlockError, match="1 rows failed; first: value_error"):
            compute({"n": "int(employees)"}, on_row_error="fail")(LEADS, context)

    def test_too_many_failed_rows_fail_the_block(self, context: BlockContext) -> None:
        with pytest.raises(BlockError, match="3 of 3 rows failed"):
            compute({"n": "nope + 1"})(LEADS, context)

    def test_an_empty_table_stays_empty_with_the_new_columns(
        self, context: BlockContext
    ) -> None:
        out = compute({"full": "first + last"})(LEADS.iloc[0:0], context)
        assert (len(out), list(out.columns)[-2:]) == (0, ["full", "compute_error"])


# Arithmetic over generated numeric columns agrees with pandas' own.
Tree = tuple[str, pd.Series, pd.Series]  # text, pandas' values, rows dividing by zero
NAMES = ("a", "b", "c")
OPS: dict[str, Callable[[pd.Series, pd.Series], pd.Series]] = {
    "+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
    "/": lambda x, y: x / y,
}


def trees(table: pd.DataFrame) -> st.SearchStrategy[Tree]:
    zero = pd.Series(False, index=table.index)
    leaves = st.one_of(
        st.sampled_from(NAMES).map(lambda n: (n, table[n], zero)),
        st.integers(-20, 20).map(lambda k: (f"({k})", pd.Series(k, index=table.index), zero)),
    )

    def combine(children: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
        def node(op: str, left: Tree, right: Tree) -> Tree:
            bad = left[2] | right[2] | ((right[1] == 0) if op == "/" else zero)
            return (f"({left[0]} {op} {right[0]})", OPS[op](left[1], right[1]), bad)
        return st.builds(node, st.sampled_from(list(OPS)), children, children)

    return st.recursive(leaves, combine, max_leaves=6)


@st.composite
def tables_and_trees(draw: st.DrawFn) -> tuple[pd.DataFrame, Tree]:
    rows = draw(st.integers(1, 8))
    columns = {}
    for name in NAMES:
        integral = draw(st.booleans())
        numbers = st.integers(-1000, 1000) if integral else st.floats(-1e6, 1e6,
                                                                     allow_nan=False)
        columns[name] = pd.Series(draw(st.lists(numbers, min_size=rows, max_size=rows)),
                                  dtype="int64" if integral else "float64")
    table = pd.DataFrame(columns)
    return table, draw(trees(table))


TOKENS = [*"abcxyz_()[]{}.,:;'\"+-*/%<>=!~^&| 0123456789", "\n", "__class__", "__import__",
          "os", "system", "lambda", "open", "eval", "exec", "row", "lower", " for ", " in ",
          " if ", " else ", " not ", "**", "getattr", ".mro()", "'a'", "a", "b", "c"]


class TestProperties:
    @settings(max_examples=150, deadline=None)
    @given(tables_and_trees())
    def test_arithmetic_agrees_with_pandas(self, case: tuple[pd.DataFrame, Tree]) -> None:
        table, (text, expected, divides_by_zero) = case
        context = BlockContext(files=None, outputs=None)  # type: ignore[arg-type]
        out = compute({"r": text}, max_error_ratio=1)(table, context)
        errors = out["compute_error"].notna().to_numpy()
        assert (errors == divides_by_zero.to_numpy()).all(), text
        got = out["r"].astype("float64").to_numpy()[~errors]
        want = expected.astype("float64").to_numpy()[~errors]
        assert np.allclose(got, want, rtol=1e-9, equal_nan=True), text

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(st.text(max_size=40), st.lists(st.sampled_from(TOKENS), max_size=20)
                     .map("".join)))
    def test_no_text_ever_executes_python(self, text: str) -> None:
        """Whatever the text, it is refused, or it evaluates to plain data (or a row
        error) without a single audited action: no import, exec, compile of code or
        file opened."""
        try:
            evaluate = compile_expression(text).evaluator()
        except ExpressionInvalid:
            return
        _AUDIT.clear()
        _AUDIT.append("on")
        try:
            result = evaluate({"a": "x", "b": 2, "c": None, "x": 1.5, "y": "", "z": [1]})
        except ExpressionError:
            result = None
        finally:
            events = _AUDIT[1:]
            _AUDIT.clear()
        assert events == [], (text, events)
        assert isinstance(result, str | int | float | bool | tuple | list | type(None))


# An audit hook (one per process, it cannot be removed) that records while a test asks.
_AUDIT: list[str] = []
_WATCHED = ("exec", "compile", "import", "open", "os.", "subprocess.", "builtins.",
            "object.__getattr__", "ctypes.", "socket.", "sys._getframe")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _AUDIT and event.startswith(_WATCHED):
        _AUDIT.append(event)


sys.addaudithook(_audit)
