"""The filter block: keep the rows that pass every (or any) condition.

Vectorised over the column with pandas and pyarrow kernels, with exactly the semantics
of :func:`workflow_engine.core.conditions.evaluate`, which a property test checks.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from ..core.conditions import (
    FALSE_WORDS,
    NUMBER_PATTERN,
    ORDERING,
    TRUE_WORDS,
    ColumnCondition,
    Operator,
    as_number,
    evaluate,
    regex_search,
)
from .base import Block, BlockContext, BlockParams, require_columns
from .tables import json_columns

__all__ = ["Filter", "mask"]


class FilterParams(BlockParams):
    """Parameters of ``filter``."""

    conditions: list[ColumnCondition] = Field(min_length=1, max_length=50)
    match: Literal["all", "any"] = Field("all", description="All conditions, or any one.")


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _numbers(column: pd.Series) -> pd.Series:
    """The column as finite floats where it holds a plain decimal number, else NaN."""
    if pd.api.types.is_bool_dtype(column):
        return pd.Series(np.nan, index=column.index)
    if pd.api.types.is_numeric_dtype(column):
        numbers = column.astype("float64")
    else:
        text = column.astype("string")
        plain = text.str.fullmatch(NUMBER_PATTERN).fillna(False).astype(bool)
        numbers = pd.to_numeric(text.where(plain).str.strip(), errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers))


def _texts(column: pd.Series) -> pd.Series:
    """The column as text, formatted as conditions format a value (1.0 -> "1", True -> "true")."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column.map(lambda v: None if pd.isna(v) else _format_value(v)).astype("string")
    return column.astype("string")


def _empty(column: pd.Series) -> pd.Series:
    text = _texts(column)
    return (text.isna() | (text.str.strip() == "")).fillna(True).astype(bool)


def _same(column: pd.Series, value: object, case_sensitive: bool) -> pd.Series:
    """Row-wise ``evaluate(equals)``: numbers as numbers when both are, else text."""
    text = _texts(column)
    wanted = _format_value(value)
    if not case_sensitive:
        text, wanted = text.str.lower(), wanted.lower()
    result = (text == wanted).fillna(False).astype(bool)
    number = as_number(value)
    if number is not None:
        numbers = _numbers(column)
        result = result.where(numbers.isna(), numbers == number)
    return result & ~_empty(column)


def _value(item: object) -> object:
    """A cell as a condition sees it: missing (NaN, NA) as None."""
    return item if isinstance(item, list | dict) or not pd.isna(item) else None  # type: ignore[call-overload]


def mask(table: pd.DataFrame, condition: ColumnCondition) -> pd.Series:
    """Which rows of ``table`` satisfy ``condition``."""
    column = table[condition.column]
    if isinstance(column, pd.DataFrame):  # duplicate names: refused at read, but be safe
        column = column.iloc[:, 0]
    if json_columns(column.to_frame()):
        # Lists and objects (say, an enrichment's references): row by row, exactly as
        # a condition judges such a value (a list matches if an element does).
        return column.map(lambda item: evaluate(condition, _value(item))).astype(bool)
    op, value, cs = condition.operator, condition.value, condition.case_sensitive
    if op is Operator.IS_EMPTY:
        return _empty(column)
    if op is Operator.IS_NOT_EMPTY:
        return ~_empty(column)
    if op in (Operator.IS_TRUE, Operator.IS_FALSE):
        if pd.api.types.is_bool_dtype(column):
            truth = column.fillna(op is not Operator.IS_TRUE).astype(bool)
            return truth if op is Operator.IS_TRUE else ~truth
        words = _texts(column).str.strip().str.lower()
        return words.isin(TRUE_WORDS if op is Operator.IS_TRUE else FALSE_WORDS).astype(bool)
    if op in ORDERING:
        numbers, bound = _numbers(column), float(as_number(value))  # type: ignore[arg-type]
        compared = {
            Operator.GT: numbers > bound, Operator.GTE: numbers >= bound,
            Operator.LT: numbers < bound, Operator.LTE: numbers <= bound,
        }[op]
        return compared.fillna(False).astype(bool)
    if op is Operator.EQUALS:
        return _same(column, value, cs)
    if op is Operator.NOT_EQUALS:
        return ~_same(column, value, cs)
    if op in (Operator.IN, Operator.NOT_IN):
        found = pd.Series(False, index=column.index)
        for item in value:  # type: ignore[union-attr]
            found |= _same(column, item, cs)
        return found if op is Operator.IN else ~found
    empty = _empty(column)
    text = _texts(column).fillna("")
    needle = _format_value(value)
    if op is Operator.MATCHES:
        arrow = text.array.__arrow_array__() if hasattr(text.array, "__arrow_array__") else text
        hits = pd.Series(
            regex_search(needle, arrow, case_sensitive=cs).to_pylist(), index=column.index
        )
        return hits.fillna(False).astype(bool) & ~empty
    if not cs:
        text, needle = text.str.lower(), needle.lower()
    if op is Operator.CONTAINS:
        return text.str.contains(needle, regex=False).astype(bool) & ~empty
    if op is Operator.NOT_CONTAINS:
        return ~(text.str.contains(needle, regex=False).astype(bool) & ~empty)
    if op is Operator.STARTS_WITH:
        return text.str.startswith(needle).astype(bool) & ~empty
    return text.str.endswith(needle).astype(bool) & ~empty


class Filter(Block[FilterParams]):
    """Keep the rows that pass the conditions."""

    kind = "filter"
    description = "Keep only the rows that pass all (or any) of the conditions."
    Params = FilterParams
    requires = "the columns the conditions name"
    produces = "the rows that pass, all columns"

    def required_columns(self) -> list[str]:
        """Every column a condition names."""
        return list(dict.fromkeys(c.column for c in self.params.conditions))

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        assert table is not None
        require_columns(table, self.required_columns(), self.kind)
        combined: pd.Series | None = None
        for condition in self.params.conditions:
            context.check_cancelled()
            passed = mask(table, condition)
            if combined is None:
                combined = passed
            elif self.params.match == "all":
                combined &= passed
            else:
                combined |= passed
        assert combined is not None
        context.progress(len(table), len(table))
        return table[combined.to_numpy()].reset_index(drop=True)
