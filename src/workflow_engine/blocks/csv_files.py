"""The blocks that read a CSV into the table and save the table as a CSV."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import pandas as pd
from pydantic import Field, StringConstraints

from ..errors import WorkflowError
from ..storage import FILE_NAME_PATTERN, FileArea
from .base import Block, BlockContext, BlockError, BlockParams
from .csv_checks import Delimiter, TextEncoding
from .tables import read_csv_table, write_csv_table

__all__ = ["ReadCsv", "SaveCsv"]

FileName = Annotated[str, StringConstraints(pattern=FILE_NAME_PATTERN)]


class ReadCsvParams(BlockParams):
    """Parameters of ``read_csv``."""

    file: FileName = Field(description="A file in the files directory (see /api/files).")
    delimiter: Delimiter = ","
    encoding: TextEncoding = "utf-8"
    max_rows: int | None = Field(
        None, ge=1, le=10_000_000,
        description="Read only the first rows (a trial run on a sample); all by default.")


class ReadCsv(Block[ReadCsvParams]):
    """Read a CSV file from the files directory; its rows replace the table."""

    kind = "read_csv"
    description = "Read a CSV file from the files directory as the instance's table."
    Params = ReadCsvParams
    needs_table = False
    requires = "no table"
    produces = "the file's rows; every column as text"

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        return read_csv_table(
            context.files.existing(self.params.file), name=self.params.file,
            delimiter=self.params.delimiter, encoding=self.params.encoding, context=context,
            max_rows=self.params.max_rows, limits=self.limits,
        )

    def columns_after(self, columns: Sequence[str] | None, files: FileArea) -> list[str] | None:
        """The file's header, if the file is there and readable now."""
        try:
            return list(read_csv_table(
                files.existing(self.params.file), delimiter=self.params.delimiter,
                encoding=self.params.encoding, max_rows=1, limits=self.limits,
            ).columns)
        except (WorkflowError, OSError):
            # Not there or not readable yet: the columns are unknown, not wrong.
            return None


class SaveCsvParams(BlockParams):
    """Parameters of ``save_csv``."""

    file_name: Annotated[
        str, StringConstraints(pattern=FILE_NAME_PATTERN[:-1] + r"\.[cC][sS][vV]$",
                               max_length=128)
    ] = Field(description="Name of the CSV written into the outputs directory; ends in .csv.")
    overwrite: bool = Field(True, description="Replace a file of that name.")
    neutralise_formulas: bool = Field(
        True, description="Prefix cells starting with = + - @ with ' (CSV injection)."
    )


class SaveCsv(Block[SaveCsvParams]):
    """Write the table as a CSV file into the outputs directory; the table passes on."""

    kind = "save_csv"
    description = "Write the table as a CSV into the outputs directory; the table is unchanged."
    Params = SaveCsvParams
    requires = "a table"
    produces = "the input table, unchanged; a CSV file in outputs"

    def keeps_rows(self) -> bool:
        """The table passes on unchanged."""
        return True

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        assert table is not None
        target = context.outputs.file(self.params.file_name)
        if not self.params.overwrite and target.exists():
            raise BlockError(
                f"{self.params.file_name} already exists in outputs and overwrite is false.",
                file_name=self.params.file_name,
            )
        context.check_cancelled()
        with target.writing() as out:
            write_csv_table(table, out, neutralise=self.params.neutralise_formulas)
        context.progress(len(table), len(table))
        return table

