"""What a block is: a small configured callable over the instance's table.

A block is built from its validated parameters (a pydantic model checked when the
definition is posted) and called with the input table and a :class:`BlockContext`
(files, progress, cancellation). It returns the output table. It also tells the static
pass what it needs and what it produces, so a definition can be checked before it runs.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ..errors import WorkflowError
from ..limits import DEFAULT_LIMITS, Limits
from ..storage import FileArea

__all__ = [
    "Block",
    "BlockCancelled",
    "BlockContext",
    "BlockError",
    "BlockParams",
    "MissingColumns",
    "NoInputTable",
    "require_columns",
]


class BlockError(WorkflowError):
    """A block could not do its work; recorded on the instance, which goes to ``failed``."""

    code = "block_failed"
    status = 422
    title = "Block failed"


class MissingColumns(BlockError):
    """The table lacks a column the block needs."""

    code = "missing_column"
    title = "Missing column"


class NoInputTable(BlockError):
    """The block needs a table and no block before it produced one."""

    code = "no_table"
    title = "No input table"


class BlockCancelled(BlockError):
    """The block was asked to stop and did."""

    code = "block_cancelled"
    title = "Block cancelled"


class BlockParams(BaseModel):
    """Base of block parameter models: strict, unknown parameters refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass
class BlockContext:
    """What a running block may use besides its input table."""

    files: FileArea
    outputs: FileArea
    progress: Callable[[int, int | None], None] = lambda done, total: None
    # How many rows' requests have left for an upstream API (the rest wait for its rate
    # budget): reported by the blocks that send them.
    sent: Callable[[int], None] = lambda rows: None
    cancel: threading.Event = field(default_factory=threading.Event)
    # The process-wide enrichment scheduler (sixtyfour.Enricher), for the blocks that call
    # the API; built on first use.
    enrichment: Any = None

    @property
    def enricher(self) -> Any:
        """The enricher, or None where no enrichment is configured."""
        return self.enrichment.get() if self.enrichment is not None else None

    def check_cancelled(self) -> None:
        """Raise :class:`BlockCancelled` if the run was asked to stop."""
        if self.cancel.is_set():
            raise BlockCancelled("The block was cancelled.")


P = TypeVar("P", bound=BlockParams)


class Block(ABC, Generic[P]):
    """A configured block. Subclasses set ``kind``, ``description`` and ``Params``.

    ``limits`` are the server's limits on what a block reads (the catalog passes them).
    """

    kind: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BlockParams]]
    needs_table: ClassVar[bool] = True
    requires: ClassVar[str] = "nothing"
    produces: ClassVar[str] = "the input table, changed as described"

    def __init__(self, params: P, limits: Limits = DEFAULT_LIMITS) -> None:
        self.params = params
        self.limits = limits

    @abstractmethod
    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        """Transform the input table into the output table."""

    def required_columns(self) -> list[str]:
        """Columns the input table must have."""
        return []

    def produced_columns(self) -> list[str]:
        """Columns the block adds (for the catalog)."""
        return []

    def columns_after(self, columns: Sequence[str] | None, files: FileArea) -> list[str] | None:
        """The output's columns given the input's, when they can be known statically."""
        return list(columns) if columns is not None else None


def require_columns(table: pd.DataFrame, columns: Sequence[str], block: str) -> None:
    """Raise :class:`MissingColumns` naming what is missing and what is there."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise MissingColumns(
            f"{block}: no column {', '.join(repr(c) for c in missing)}; the table has "
            f"{', '.join(repr(str(c)) for c in table.columns) or 'no columns'}.",
            missing=missing, columns=[str(c) for c in table.columns],
        )


def describe(error: Exception) -> dict[str, Any]:
    """How a block failure is recorded: a code and a message, never a traceback."""
    if isinstance(error, WorkflowError):
        return {"code": error.code, "message": error.detail, **{
            key: value for key, value in error.context.items() if value is not None}}
    return {"code": "block_crashed", "message": f"{type(error).__name__}: {error}"}
