"""CSV in and out, and Parquet snapshots: the table formats the engine reads and writes.

CSV is read with pyarrow's streaming reader (fast, and it lets a read report progress
and stop between batches). Every column is read as text: enrichment data is full of
values that only look like numbers (zip codes, phone numbers, ids with leading zeros),
and conditions compare numbers as numbers where it matters.

A column may hold JSON values, lists and objects (an enrichment's references, a
company's people): in the table they are real lists and dicts, so JSON answers carry
them as such. A snapshot stores such a column as JSON text marked as JSON in the
Parquet schema, and reads it back as values (Arrow's own list and struct types would
turn objects with different keys into one struct of every key). A CSV has only text,
so writing one flattens them to JSON text.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..core.conditions import NUMBER_PATTERN
from ..limits import DEFAULT_LIMITS, Limits
from ..storage import Readable
from .base import BlockContext
from .csv_checks import BLOCK_BYTES, CsvInvalid, check_width, csv_invalid, excerpt

__all__ = [
    "CsvInvalid",
    "flatten_json",
    "json_columns",
    "json_text",
    "neutralise_formulas",
    "read_csv_table",
    "read_snapshot",
    "sorted_rows",
    "write_csv_table",
    "write_snapshot",
]

# Field metadata of a snapshot column whose text is JSON to decode on reading.
JSON_FIELD = {b"workflow_engine.json": b"1"}
SHOWN_COLUMNS = 5
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _options(
    delimiter: str, encoding: str, column_types: dict[str, pa.DataType] | None = None
) -> dict[str, object]:
    return {
        "read_options": pacsv.ReadOptions(encoding=encoding, block_size=BLOCK_BYTES),
        "parse_options": pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        # Only an empty cell is missing: "NA" is Namibia, "null" may be someone's name.
        "convert_options": pacsv.ConvertOptions(
            column_types=column_types or {}, strings_can_be_null=True,
            quoted_strings_can_be_null=False, null_values=[""],
        ),
    }


def _header(source: Readable, name: str, delimiter: str, encoding: str) -> list[str]:
    with source.open() as stream:
        names = list(pacsv.open_csv(stream, **_options(delimiter, encoding)).schema.names)
    duplicates = sorted(column for column, count in Counter(names).items() if count > 1)
    if duplicates:
        shown = ", ".join(excerpt(d) for d in duplicates[:SHOWN_COLUMNS])
        hidden = len(duplicates) - SHOWN_COLUMNS
        more = f" and {hidden} more" if hidden > 0 else ""
        raise CsvInvalid(
            f"{name}: duplicate column names {shown}{more}; every column needs a name of its "
            "own.", duplicates=[excerpt(d) for d in duplicates],
        )
    if any(not column.strip() for column in names):
        raise CsvInvalid(f"{name}: a column has an empty name in the header.")
    return names


def read_csv_table(
    source: Readable,
    *,
    name: str | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    context: BlockContext | None = None,
    max_rows: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> pd.DataFrame:
    """Read a CSV file (stored, or an upload being checked) as a table of text columns;
    :class:`CsvInvalid` says what is wrong.

    ``max_rows`` stops after that many rows (for previews). A file wider than ``limits``
    is refused from its first bytes, before it is parsed. Whatever goes wrong decoding
    or parsing the file is said by :func:`csv_invalid`.
    """
    label = name or source.name
    if source.size() == 0:
        raise CsvInvalid(f"{label} is empty: a CSV needs a header row and data rows.")
    try:
        check_width(source, label, delimiter=delimiter, encoding=encoding, limits=limits)
        table = _read(source, label, delimiter, encoding, context, max_rows)
    except (CsvInvalid, pa.ArrowInvalid, UnicodeError, LookupError, ValueError,
            TypeError) as exc:
        raise csv_invalid(label, exc, source=source, encoding=encoding) from exc
    if context is not None:
        context.progress(table.num_rows, table.num_rows)
    frame: pd.DataFrame = table.to_pandas()
    return frame


def _is_json(value: object) -> bool:
    return isinstance(value, list | dict)


def json_columns(table: pd.DataFrame) -> list[str]:
    """The columns that hold a list or an object in some row."""
    found = []
    for column in table.columns:
        series = table[column]
        # Only an object column can hold them; text and numbers are ruled out in C.
        if series.dtype != object or pd.api.types.infer_dtype(series, skipna=True) in (
                "string", "empty", "integer", "floating", "boolean"):
            continue
        if series.map(_is_json).any():
            found.append(str(column))
    return found


def json_text(series: pd.Series, *, sort_keys: bool = False) -> pd.Series:
    """A column as text: lists and objects as JSON, other values as they are."""
    def text(value: Any) -> Any:
        if _is_json(value):
            return json.dumps(value, ensure_ascii=False, sort_keys=sort_keys)
        return None if pd.isna(value) else str(value)
    return series.map(text).astype("string")


def flatten_json(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its lists and objects written as JSON text (for CSV)."""
    columns = json_columns(table)
    if not columns:
        return table
    result = table.copy()
    for column in columns:
        result[column] = json_text(result[column])
    return result


def _read(
    source: Readable, label: str, delimiter: str, encoding: str, context: BlockContext | None,
    max_rows: int | None,
) -> pa.Table:
    columns = _header(source, label, delimiter, encoding)
    types = dict.fromkeys(columns, pa.string())
    batches = []
    rows = 0
    with source.open() as stream:
        reader = pacsv.open_csv(stream, **_options(delimiter, encoding, types))
        for batch in reader:
            if context is not None:
                context.check_cancelled()
            batches.append(batch)
            rows += batch.num_rows
            if context is not None:
                context.progress(rows, None)
            if max_rows is not None and rows >= max_rows:
                break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    if max_rows is not None:
        table = table.slice(0, max_rows)
    if table.num_rows == 0:
        raise CsvInvalid(f"{label} has a header but no data rows.",
                         columns=[excerpt(c) for c in columns])
    return table


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """Prefix cells that a spreadsheet would run as a formula with ``'`` (CSV injection)."""
    result = table.copy()
    for column in result.columns:
        series = result[column]
        if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
            continue
        text = series.astype("string")
        risky = text.str.startswith(FORMULA_PREFIXES).fillna(False).astype(bool)
        if risky.any():
            # "-5" and "+3.2" are numbers to a spreadsheet, not formulas: leave them be.
            # (Checked on the few risky cells only: a regex over every cell is slow.)
            plain = text[risky].str.fullmatch(NUMBER_PATTERN).fillna(False).astype(bool)
            risky[plain[plain].index] = False
        if risky.any():
            result[column] = text.where(~risky, "'" + text)
    return result


def write_csv_table(table: pd.DataFrame, out: BinaryIO, *, neutralise: bool = True) -> None:
    """Write ``table`` as CSV to ``out`` (a stored file's atomic writer)."""
    table = flatten_json(table)
    if neutralise:
        table = neutralise_formulas(table)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if arrow.num_columns == 1 and arrow.column(0).null_count:
        # A lone missing cell would be written as an empty line, which every CSV reader
        # (ours included) skips: the row would be lost. Written as "" it stays a row.
        cells = pc.fill_null(arrow.column(0).cast(pa.string()), "")
        arrow = pa.table({arrow.column_names[0]: cells})
    pacsv.write_csv(arrow, out, pacsv.WriteOptions(quoting_style="needed"))


def _encode(value: Any) -> str | None:
    if not _is_json(value) and pd.isna(value):
        return None
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    return json.dumps(value, ensure_ascii=False)


def write_snapshot(table: pd.DataFrame, out: BinaryIO) -> None:
    """Write a table as a Parquet snapshot to ``out``; JSON columns as marked JSON text."""
    columns = json_columns(table)
    if columns:
        table = table.copy()
        for column in columns:
            # Every value as JSON, strings too: reading decodes each back to what it was.
            table[column] = table[column].map(_encode).astype("string")
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if columns:
        schema = arrow.schema
        for column in columns:
            index = schema.get_field_index(column)
            schema = schema.set(index, schema.field(index).with_metadata(JSON_FIELD))
        arrow = arrow.cast(schema)
    pq.write_table(arrow, out, compression="lz4")


def read_snapshot(stream: BinaryIO) -> pd.DataFrame:
    """A table written by :func:`write_snapshot`, its JSON columns decoded."""
    arrow = pq.read_table(stream)
    frame: pd.DataFrame = arrow.to_pandas()
    for field in arrow.schema:
        if (field.metadata or {}).items() >= JSON_FIELD.items():
            frame[field.name] = pd.Series(
                [None if text is None else json.loads(text)
                 for text in arrow.column(field.name).to_pylist()],
                index=frame.index, dtype=object)
    return frame


def sorted_rows(table: pd.DataFrame, column: str, *, descending: bool = False) -> pd.DataFrame:
    """The table's rows ordered by ``column`` (stable: ties keep their order), missing
    values last either way. A column whose values all read as numbers (CSV cells are
    text: ``"9"`` before ``"72"``) is ordered as numbers; one of mixed kinds (numbers
    beside text, lists) by the values' text."""
    values = table[column]
    present = values.notna()
    try:
        numbers = pd.to_numeric(values.where(present), errors="coerce")
    except (TypeError, ValueError):
        numbers = None
    if numbers is not None and bool((numbers.notna() == present).all()):
        order = numbers
    elif values.dtype != object:
        order = values
    else:
        order = values.map(str, na_action="ignore")
    ranked = order.sort_values(ascending=not descending, kind="stable", na_position="last")
    return table.loc[ranked.index]
