"""What can be wrong with a CSV file, and the one way it is said.

Every failure to decode or parse a CSV, wherever it is read (an upload, a preview, the
``read_csv`` block), becomes a :class:`CsvInvalid` through :func:`csv_invalid`. Messages
name the file and what is wrong with it; where they quote the input, they quote a short
excerpt with everything unprintable escaped, never raw bytes.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from .base import BlockError

__all__ = ["EXCERPT_CHARS", "CsvInvalid", "csv_invalid", "excerpt", "first_undecodable_byte"]

EXCERPT_CHARS = 40
SCAN_BYTES = 1 << 20
# The parser reads in blocks of this size; a row must fit in one.
BLOCK_BYTES = 1 << 20

_WRONG_WIDTH = re.compile(r"Expected (\d+) columns, got (\d+): ?(.*)", re.DOTALL)


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


def first_undecodable_byte(path: Path, encoding: str) -> int | None:
    """The offset of the first byte of ``path`` that ``encoding`` cannot decode, if any.

    Only called once a read has failed, so the cost of a pass over the file is paid on
    the error path alone.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as stream:
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


def csv_invalid(name: str, error: BaseException, *, path: Path, encoding: str) -> CsvInvalid:
    """The :class:`CsvInvalid` that says what ``error``, raised reading ``path``, means."""
    if isinstance(error, CsvInvalid):
        return error
    if isinstance(error, LookupError):
        return CsvInvalid(f"Unknown encoding {encoding!r}.", encoding=encoding)
    message = str(error)
    if isinstance(error, UnicodeError) or "UTF8" in message:
        return _undecodable(name, path, encoding, error)
    if "Empty CSV file" in message:
        return CsvInvalid(f"{name} is empty: a CSV needs a header row and data rows.")
    if "straddling object" in message:
        return CsvInvalid(
            f"{name} is not a well-formed CSV: a row is longer than {BLOCK_BYTES >> 20} MiB "
            "(perhaps a quote that is never closed)."
        )
    wrong_width = _WRONG_WIDTH.search(message)
    if wrong_width:
        expected, got, row = wrong_width.groups()
        return CsvInvalid(
            f"{name} is not a well-formed CSV: a row has {got} fields where the header has "
            f"{expected}: {excerpt(row)}.", expected_fields=int(expected), got_fields=int(got),
        )
    first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return CsvInvalid(f"{name} is not a well-formed CSV: {excerpt(first_line)}.")


def _undecodable(name: str, path: Path, encoding: str, error: BaseException) -> CsvInvalid:
    hint = "give the file's encoding (e.g. latin-1)."
    try:
        offset = first_undecodable_byte(path, encoding)
    except (OSError, UnicodeError) as exc:
        # A decoder that fails without naming a byte (UTF-16 without a byte order mark).
        error, offset = exc, None
    if offset is None:
        reason = f" ({excerpt(str(error))})" if isinstance(error, UnicodeError) else ""
        return CsvInvalid(f"{name} is not valid {encoding}{reason}; {hint}", encoding=encoding)
    with path.open("rb") as stream:
        stream.seek(offset)
        byte = stream.read(1)
    shown = f" (0x{byte[0]:02x})" if byte else ""
    return CsvInvalid(
        f"{name} is not valid {encoding}: the byte at offset {offset}{shown} cannot be "
        f"decoded; {hint}", encoding=encoding, offset=offset,
    )
