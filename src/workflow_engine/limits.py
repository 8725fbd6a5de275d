"""Limits on what the engine reads from files: one value object, with its defaults here.

Built from the settings in ``create_app`` and handed to the block catalog, so blocks and
the files endpoints read under the same limits.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_CSV_COLUMNS",
    "HEADER_BYTES_PER_COLUMN",
    "MIN_HEADER_BYTES",
    "Limits",
]

DEFAULT_MAX_CSV_COLUMNS = 1000
# A generous size for one column name and its delimiter: the header line may be this
# long per allowed column (and at least MIN_HEADER_BYTES) before the file is refused.
HEADER_BYTES_PER_COLUMN = 256
MIN_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """How wide a CSV may be. Checked on the header alone, before the file is parsed."""

    max_csv_columns: int = DEFAULT_MAX_CSV_COLUMNS

    @property
    def max_csv_header_bytes(self) -> int:
        """The longest header line read before a file is refused as too wide."""
        return max(MIN_HEADER_BYTES, self.max_csv_columns * HEADER_BYTES_PER_COLUMN)


DEFAULT_LIMITS = Limits()
