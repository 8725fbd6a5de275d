"""Files: the CSVs read_csv reads (uploads, and the samples behind them) and the files
save_csv writes, as the API offers them.

An upload is parsed as read_csv would read it while it is still staged, so a file that is
refused never replaces the one there, and a file that is stored can be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import pandas as pd

from ..blocks.csv_checks import Delimiter, TextEncoding
from ..blocks.tables import read_csv_table
from ..errors import FileExists, ValidationFailed
from ..limits import DEFAULT_LIMITS, Limits
from ..storage import FileArea, FileInfo, StoredFile

__all__ = ["CsvRead", "Files"]


@dataclass(frozen=True)
class CsvRead:
    """A CSV as read_csv reads it: its name, its size in bytes, and its rows (all of them,
    or the first few of a preview)."""

    name: str
    size: int
    table: pd.DataFrame


class Files:
    """The input files area (uploads over the shipped samples) and the outputs area."""

    def __init__(self, files: FileArea, outputs: FileArea, *,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.files = files
        self.outputs = outputs
        self.limits = limits

    def inputs(self) -> list[FileInfo]:
        """The files read_csv can read, by name."""
        return self.files.listing()

    def input(self, name: str) -> StoredFile:
        """An input file that exists (else :class:`~workflow_engine.errors.FileNotFound`)."""
        return self.files.existing(name)

    def upload(self, name: str, data: IO[bytes], *, overwrite: bool = False,
               delimiter: Delimiter = ",", encoding: TextEncoding = "utf-8") -> CsvRead:
        """Store ``data`` as the input file ``name`` if it reads as a CSV with a header and
        rows; otherwise store nothing. Samples are never written to: an upload of a
        sample's name takes its place for read_csv."""
        target = self.files.file(name)  # refuses a name that is no plain file name first
        if not name.lower().endswith(".csv"):
            raise ValidationFailed(f"{name!r} is not a .csv file; only CSV files are "
                                   "accepted.", name=name)
        # A sample of that name counts: the upload would take its place for read_csv.
        if self.files.find(name) is not None and not overwrite:
            raise FileExists(f"{name!r} exists; add ?overwrite=true to replace it.", name=name)
        with target.staged() as staged:
            staged.write(data)
            size = staged.size()
            table = read_csv_table(staged, name=name, delimiter=delimiter, encoding=encoding,
                                   limits=self.limits)
            staged.publish()
        return CsvRead(name, size, table)

    def preview(self, name: str, *, rows: int, delimiter: Delimiter = ",",
                encoding: TextEncoding = "utf-8") -> CsvRead:
        """The first ``rows`` rows of an input file, parsed as read_csv would."""
        stored = self.files.existing(name)
        table = read_csv_table(stored, name=name, max_rows=rows, limits=self.limits,
                               delimiter=delimiter, encoding=encoding)
        return CsvRead(name, stored.size(), table)

    def written(self) -> list[FileInfo]:
        """The files save_csv has written, by name."""
        return self.outputs.listing()

    def output(self, name: str) -> StoredFile:
        """A file save_csv wrote (else :class:`~workflow_engine.errors.FileNotFound`)."""
        return self.outputs.existing(name)
