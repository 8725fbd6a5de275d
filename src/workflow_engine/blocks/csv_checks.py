"""What can be wrong with a CSV file, found cheaply, and the one way it is said.

:func:`check_width` counts the header's fields from its first bytes, before the parser
(whose cost grows with the number of columns) sees the file. Every failure to decode or
parse a CSV, wherever it is read (an upload, a preview, the ``read_csv`` block), becomes
a :class:`CsvInvalid` through :func:`csv_invalid`. Messages name the file and what is
wrong with it; where they quote the input, they quote a short excerpt with everything
unprintable escaped, never raw bytes.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from ..limits import Limits
from ..storage import Readable
from .base import BlockError

__all__ = [
    "EXCERPT_CHARS",
    "CsvInvalid",
    "Delimiter",
    "TextEncoding",
    "check_width",
    "csv_invalid",
    "excerpt",
    "first_undecodable_byte",
]

EXCERPT_CHARS = 40
SCAN_BYTES = 1 << 20
# The parser reads in blocks of this size; a row must fit in one.
BLOCK_BYTES = 1 << 20

_WRONG_WIDTH = re.compile(r"Expected (\d+) columns, got (\d+): ?(.*)", re.DOTALL)


def _text_encoding(name: str) -> str:
    try:
        found = codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}") from None
    # hex, base64, zlib... are codecs too, but they turn bytes into bytes, not text.
    if not getattr(found, "_is_text_encoding", True):
        raise ValueError(f"{name!r} is not a text encoding")
    return name


def _delimiter(char: str) -> str:
    if char != "\t" and (not " " <= char <= "~" or char == '"'):
        raise ValueError("the delimiter must be a tab or one printable ASCII character "
                         "other than '\"'")
    return char


TextEncoding = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$"), AfterValidator(_text_encoding)]
"""A text encoding's name, e.g. ``utf-8``, ``latin-1``, ``cp1252``."""
Delimiter = Annotated[str, StringConstraints(min_length=1, max_length=1),
                      AfterValidator(_delimiter)]
"""A CSV delimiter: one printable ASCII character (or a tab), not a quote."""


class CsvInvalid(BlockError):
    """A CSV file that cannot be read as a table."""

    code = "csv_invalid"
    title = "Invalid CSV"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` quoted for a message: at most ``limit`` characters inside the quotes,
    non-printable characters escaped as Python's ``repr`` would, ``…`` where it is cut."""
    pieces: list[str] = []
    used = 0
    for index, char in enumerate(text):
        if char.isprintable() and char not in "\\'\ufffd":
            piece = char
        elif char == "'":
            piece = "\\'"
        else:
            piece = char.encode("unicode_escape").decode("ascii")
        # Keep room for the ellipsis unless this is the last character.
        room = limit if index == len(text) - 1 else limit - 1
        if used + len(piece) > room:
            pieces.append("…")
            break
        pieces.append(piece)
        used += len(piece)
    return "'" + "".join(pieces) + "'"


def check_width(source: Readable, name: str, *, delimiter: str, encoding: str,
                limits: Limits) -> None:
    """Refuse a file whose header has more than ``limits.max_csv_columns`` fields, or whose
    header line is longer than ``limits.max_csv_header_bytes``, reading no more than that.

    The fields are counted with the ``csv`` module (same quoting rules as the parser), on
    the first non-empty record. Decoding errors propagate for :func:`csv_invalid` to say.
    """
    bound = limits.max_csv_header_bytes
    with source.open() as stream:
        head = stream.read(bound + 1)
    whole = len(head) <= bound
    text = codecs.getincrementaldecoder(encoding)().decode(head[:bound], final=whole)
    last_line = ""

    def lines() -> Iterator[str]:
        nonlocal last_line
        for line in io.StringIO(text, newline=""):
            last_line = line
            yield line

    fields: list[str] = []
    try:
        fields = next((row for row in csv.reader(lines(), delimiter=delimiter) if row), [])
    except csv.Error as exc:
        if whole:
            raise CsvInvalid(
                f"{name} is not a well-formed CSV: its header cannot be read "
                f"({excerpt(str(exc))}).") from exc
        # Cut inside a quoted field: the header goes on past the bound.
    complete = whole or last_line.endswith(("\n", "\r"))
    most = limits.max_csv_columns
    if len(fields) > most:
        count = f"{len(fields)}" if complete else f"more than {most}"
        raise CsvInvalid(
            f"{name} has {count} columns; this server reads at most {most} "
            "(MAX_CSV_COLUMNS).", max_columns=most,
            column_count=len(fields) if complete else None,
        )
    if not complete:
        raise CsvInvalid(
            f"{name}: the header line is longer than {bound} bytes; this server reads at "
            f"most {most} columns (MAX_CSV_COLUMNS) in a header of at most {bound} bytes.",
            max_columns=most, max_header_bytes=bound,
        )


def first_undecodable_byte(source: Readable, encoding: str) -> int | None:
    """The offset of the first byte of ``source`` that ``encoding`` cannot decode, if any.

    Only called once a read has failed, so the cost of a pass over the file is paid on
    the error path alone.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with source.open() as stream:
        while True:
            chunk = stream.read(SCAN_BYTES)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return max(0, offset - pending + exc.start)
            if not chunk:
                return None
            offset += len(chunk)


def csv_invalid(name: str, error: BaseException, *, source: Readable,
                encoding: str) -> CsvInvalid:
    """The :class:`CsvInvalid` that says what ``error``, raised reading ``source``, means."""
    if isinstance(error, CsvInvalid):
        return error
    if isinstance(error, LookupError):
        return CsvInvalid(f"Unknown encoding {encoding!r}.", encoding=encoding)
    message = str(error)
    wrong_width = _WRONG_WIDTH.search(message)
    # pyarrow's words for undecodable input, unless they are in a row it quotes.
    if isinstance(error, UnicodeError) or (not wrong_width and "invalid UTF8" in message):
        return _undecodable(name, source, encoding, error)
    if "Empty CSV file" in message:
        return CsvInvalid(f"{name} is empty: a CSV needs a header row and data rows.")
    if "straddling object" in message:
        return CsvInvalid(
            f"{name} is not a well-formed CSV: a row is longer than {BLOCK_BYTES >> 20} MiB "
            "(perhaps a quote that is never closed)."
        )
    if wrong_width:
        expected, got, row = wrong_width.groups()
        return CsvInvalid(
            f"{name} is not a well-formed CSV: a row has {got} fields where the header has "
            f"{expected}: {excerpt(row)}.", expected_fields=int(expected), got_fields=int(got),
        )
    first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return CsvInvalid(f"{name} is not a well-formed CSV: {excerpt(first_line)}.")


def _undecodable(name: str, source: Readable, encoding: str,
                 error: BaseException) -> CsvInvalid:
    hint = "give the file's encoding (e.g. latin-1)."
    try:
        offset = first_undecodable_byte(source, encoding)
    except (OSError, UnicodeError) as exc:
        # A decoder that fails without naming a byte (UTF-16 without a byte order mark).
        error, offset = exc, None
    if offset is None:
        reason = f" ({excerpt(str(error))})" if isinstance(error, UnicodeError) else ""
        return CsvInvalid(f"{name} is not valid {encoding}{reason}; {hint}", encoding=encoding)
    with source.open() as stream:
        stream.seek(offset)
        byte = stream.read(1)
    shown = f" (0x{byte[0]:02x})" if byte else ""
    return CsvInvalid(
        f"{name} is not valid {encoding}: the byte at offset {offset}{shown} cannot be "
        f"decoded; {hint}", encoding=encoding, offset=offset,
    )
