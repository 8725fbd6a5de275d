"""Blocks that reshape the table: choose and rename columns, drop duplicate rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd
from pydantic import Field, model_validator

from ..storage import FileArea
from .base import Block, BlockContext, BlockParams, ColumnName, require_columns
from .tables import json_columns, json_text

__all__ = ["Dedupe", "SelectColumns"]



class SelectColumnsParams(BlockParams):
    """Parameters of ``select_columns``."""

    columns: list[ColumnName] = Field(min_length=1, max_length=1000,
                                      description="Columns to keep, in this order.")
    rename: dict[ColumnName, ColumnName] = Field(
        default_factory=dict, description="Old name to new name, for kept columns."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SelectColumnsParams:
        if len(set(self.columns)) != len(self.columns):
            raise ValueError("a column is listed twice")
        stray = [old for old in self.rename if old not in self.columns]
        if stray:
            raise ValueError(f"rename names columns that are not kept: {stray}")
        final = [self.rename.get(column, column) for column in self.columns]
        if len(set(final)) != len(final):
            raise ValueError("two columns would have the same name after renaming")
        return self


class SelectColumns(Block[SelectColumnsParams]):
    """Keep some columns, in a given order, optionally renamed."""

    kind = "select_columns"
    description = "Keep the listed columns in that order, optionally renaming them."
    Params = SelectColumnsParams
    requires = "the listed columns"
    produces = "the listed columns, in order, renamed as asked"

    def required_columns(self) -> list[str]:
        """The kept columns."""
        return list(self.params.columns)

    def produced_columns(self) -> list[str]:
        """The new names."""
        return list(self.params.rename.values())

    def columns_after(self, columns: Sequence[str] | None, files: FileArea) -> list[str] | None:
        """The kept columns under their new names."""
        return [self.params.rename.get(column, column) for column in self.params.columns]

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        assert table is not None
        require_columns(table, self.params.columns, self.kind)
        context.progress(len(table), len(table))
        return table[list(self.params.columns)].rename(columns=self.params.rename)


class DedupeParams(BlockParams):
    """Parameters of ``dedupe``."""

    columns: list[ColumnName] = Field(min_length=1, max_length=100,
                                      description="Rows equal on all these are duplicates.")
    keep: Literal["first", "last"] = "first"
    case_sensitive: bool = Field(False, description="Compare text ignoring case and "
                                 "surrounding spaces unless true. Rows missing a compared "
                                 "value are never duplicates.")


class Dedupe(Block[DedupeParams]):
    """Drop rows that repeat an earlier (or later) row on the given columns."""

    kind = "dedupe"
    description = "Drop duplicate rows, judged on the given columns; keep the first or last."
    Params = DedupeParams
    requires = "the compared columns"
    produces = "the rows that are not duplicates, all columns"

    def required_columns(self) -> list[str]:
        """The compared columns."""
        return list(self.params.columns)

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        assert table is not None
        require_columns(table, self.params.columns, self.kind)
        compared = table[list(self.params.columns)]
        # Lists and objects are compared by their JSON text, keys sorted: equal values
        # are equal whatever order an answer gave the keys in.
        as_json = set(json_columns(compared))
        keys = pd.DataFrame({
            column: json_text(compared[column], sort_keys=True) if column in as_json
            else compared[column].astype("string") for column in self.params.columns
        }, index=table.index)
        if not self.params.case_sensitive:
            keys = keys.apply(lambda column: column.str.strip().str.lower())
        # A row missing any compared value is nobody's duplicate: eight leads without an
        # email are eight leads, not one.
        complete = keys.notna().all(axis=1)
        duplicated = keys.duplicated(keep=self.params.keep) & complete
        context.progress(len(table), len(table))
        return table[~duplicated.to_numpy()].reset_index(drop=True)
