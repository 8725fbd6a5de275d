"""The compute block: new columns derived from the row's others by expressions.

Expressions are in the small language of :mod:`.expressions`, checked when the definition
is saved. Every row is evaluated; a row whose expression fails (a type error, a division by
zero, an empty value) gets the reason in ``<prefix>_error`` and an empty value in the
column, and the block goes on. As in the enrichment blocks, ``on_row_error`` keeps such a
row, drops it or fails the block, and past ``max_error_ratio`` the block fails.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import AfterValidator, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from .base import Block, BlockContext, BlockParams, ColumnName, check_row_errors
from .expressions import (
    MAX_EXPRESSION_LENGTH,
    CompiledExpression,
    ExpressionError,
    ExpressionInvalid,
    compile_expression,
)

__all__ = ["Compute"]

PROGRESS_EVERY = 2000


def _checked(text: str) -> str:
    try:
        compile_expression(text)
    except ExpressionInvalid as exc:
        raise PydanticCustomError("expression_invalid", "{reason}", {"reason": str(exc)}) from None
    return text


Expression = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXPRESSION_LENGTH),
                       AfterValidator(_checked)]


class ComputeParams(BlockParams):
    """Parameters of ``compute``."""

    columns: dict[ColumnName, Expression] = Field(
        min_length=1, max_length=50,
        description="New column -> expression over the row's columns (names as variables, "
        "any column as row[\"name\"]), evaluated in order: an expression may use the "
        "columns computed before it. A name of an input column replaces that column.")
    on_row_error: Literal["keep", "drop", "fail"] = Field(
        "keep", description="A row whose expression failed: keep it (error in the error "
        "column, empty value), drop it, or fail the block.")
    max_error_ratio: float = Field(
        0.5, ge=0, le=1, description="Fail the block when more rows than this share fail.")
    prefix: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = Field(
        "compute", description="Prefix of the error column (<prefix>_error).")

    @model_validator(mode="after")
    def _error_column_free(self) -> ComputeParams:
        if f"{self.prefix}_error" in self.columns:
            raise ValueError(f"'{self.prefix}_error' is the error column; compute another "
                             "name or change prefix")
        return self


def _values(column: pd.Series) -> list[Any]:
    """A column's cells as Python values, missing ones (NaN, NA, empty) as None."""
    if isinstance(column, pd.DataFrame):  # duplicate names: refused at read, but be safe
        column = column.iloc[:, 0]
    cells = column.astype(object)
    return cells.where(column.notna(), None).tolist()


def _typed(values: list[Any]) -> pd.Series:
    """A computed column with the nullable dtype its values share (object when mixed)."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    dtype = {"boolean": "boolean", "integer": "Int64", "floating": "Float64",
             "mixed-integer-float": "Float64", "string": "string"}.get(kind)
    if dtype is not None:
        try:
            return pd.Series(values, dtype=dtype)
        except (OverflowError, TypeError, ValueError):  # ints beyond 64 bits, say
            pass
    return pd.Series(values, dtype=object)


class Compute(Block[ComputeParams]):
    """Add (or replace) columns computed from each row by expressions."""

    kind = "compute"
    description = ("Add columns computed from each row's columns by safe expressions "
                   "(arithmetic, comparisons, text functions); failures go to <prefix>_error.")
    Params = ComputeParams
    requires = "the columns the expressions name"
    produces = "the input's columns, the computed columns, <prefix>_error"

    def __init__(self, params: ComputeParams, *args: Any, **kwargs: Any) -> None:
        super().__init__(params, *args, **kwargs)
        self.expressions: dict[str, CompiledExpression] = {
            column: compile_expression(text) for column, text in params.columns.items()}

    @property
    def error_column(self) -> str:
        """Where a row's failures are written."""
        return f"{self.params.prefix}_error"

    def required_columns(self) -> list[str]:
        """Every column an expression reads, but those computed before it here."""
        needed: list[str] = []
        computed: set[str] = set()
        for column, expression in self.expressions.items():
            needed.extend(name for name in expression.columns if name not in computed)
            computed.add(column)
        return list(dict.fromkeys(needed))

    def produced_columns(self) -> list[str]:
        """The computed columns and the error column."""
        return [*self.params.columns, self.error_column]

    def keeps_rows(self) -> bool:
        """Every row stays, unless failed rows are dropped."""
        return self.params.on_row_error != "drop"

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        assert table is not None
        rows = len(table)
        needed = set(self.required_columns())
        values: dict[str, list[Any]] = {
            str(column): _values(table[column]) for column in table.columns
            if str(column) in needed}
        errors: list[list[str]] = [[] for _ in range(rows)]
        total = rows * len(self.expressions)
        done = 0
        context.progress(0, total)
        computed: dict[str, list[Any]] = {}
        for column, expression in self.expressions.items():
            evaluate = expression.evaluator()
            reads = [name for name in expression.columns if name in values]
            results: list[Any] = [None] * rows
            for position in range(rows):
                if position % PROGRESS_EVERY == 0 and position:
                    context.check_cancelled()
                    context.progress(done + position, total)
                try:
                    results[position] = evaluate(
                        {name: values[name][position] for name in reads})
                except ExpressionError as exc:
                    errors[position].append(f"{exc.code}: {column}: {exc.message}")
            done += rows
            computed[column] = results
            values[column] = results  # later expressions see it
        context.progress(total, total)

        messages = ["; ".join(found) if found else None for found in errors]
        check_row_errors(self.kind, messages, on_row_error=self.params.on_row_error,
                         max_error_ratio=self.params.max_error_ratio)

        output = table.reset_index(drop=True).copy()
        for column, results in computed.items():
            output[column] = _typed(results)
        output[self.error_column] = pd.Series(messages, dtype="string")
        if self.params.on_row_error == "drop":
            output = output[output[self.error_column].isna().to_numpy()].reset_index(drop=True)
        return output
