"""What a block is: a small configured callable over the instance's table.

A block is built from its validated parameters (a pydantic model checked when the
definition is posted) and called with the input table and a :class:`BlockContext`
(files, progress, cancellation). It returns the output table. It also tells the static
pass what it needs and what it produces, so a definition can be checked before it runs.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, StringConstraints

from ..errors import Problem, WorkflowError
from ..limits import DEFAULT_LIMITS, Limits
from ..storage import FileArea

__all__ = [
    "Block",
    "BlockCancelled",
    "BlockContext",
    "BlockError",
    "BlockParams",
    "BranchColumnConflict",
    "BranchDropsRows",
    "BranchesCancelled",
    "BranchesFailed",
    "Checkpoints",
    "ColumnName",
    "MissingColumns",
    "NoInputTable",
    "check_row_errors",
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


class BranchesFailed(BlockError):
    """A branch of a fork failed (the others' outcomes are in ``branches``)."""

    code = "branch_failed"
    title = "Branch failed"


class BranchesCancelled(BlockError):
    """A branch of a fork was cancelled and none failed: the state is cancelled."""

    code = "branch_cancelled"
    title = "Branch cancelled"


class BranchDropsRows(BlockError):
    """A branch returned another number of rows than it was given: it cannot be joined."""

    code = "branch_changes_rows"
    title = "Branch changed the rows"


class BranchColumnConflict(BlockError):
    """Two branches wrote the same column: the join could keep only one."""

    code = "branch_column_conflict"
    title = "Branches wrote the same column"


class Checkpoints(Protocol):
    """Where a block keeps parts of its work that a run of the same start may reuse (a
    fork's succeeded branches), scoped to one instance and one input table."""

    def load(self, name: str) -> pd.DataFrame | None:
        """The part stored under ``name``, if any."""

    def save(self, name: str, table: pd.DataFrame) -> None:
        """Store a part under ``name``."""


# A column's name in a block's parameters.
ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


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
    # A fork's branches: each one's progress as it moves, the ids of the branches
    # cancelled on their own, and parts of the work that a retry reuses.
    branches: Callable[[list[dict[str, Any]]], None] = lambda rows: None
    cancelled_branches: Callable[[], set[str]] = set
    checkpoints: Checkpoints | None = None
    # What the block says about its run, recorded with its outcome in history.
    details: dict[str, Any] = field(default_factory=dict)
    # The process-wide enrichment scheduler (sixtyfour.Enricher), for the blocks that call
    # the API; built on first use.
    enrichment: Any = None
    # The process's outbound HTTP (outbound.HttpCalls), for http_request.
    http: Any = None
    # The instance the run belongs to and where in it the block runs (its state, and in a
    # fork its branch, "state/branch"): what a request that must not be sent twice is
    # recorded under.
    instance_id: str | None = None
    step: str | None = None

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
    # Made of other blocks of the catalog (a fork): built with the catalog, and checked
    # part by part.
    composite: ClassVar[bool] = False

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

    def column_path(self, column: str) -> str:
        """Where in the params a required column is named, as a JSON path suffix (such
        as ``.url``); ``""`` points at the params as a whole."""
        return ""

    def check_parts(self, path: str) -> list[Problem]:
        """Problems with the blocks a composite block is made of."""
        return []

    def check_secrets(self, known: Collection[str] | None, path: str) -> list[Problem]:
        """Problems with the server's secrets the block names (``known``: their names, or
        None where the catalog does not know them)."""
        return []

    def keeps_rows(self) -> bool:
        """Whether the output has the input's rows, in order (a fork's branches must)."""
        return False

    def columns_after(self, columns: Sequence[str] | None, files: FileArea) -> list[str] | None:
        """The output's columns given the input's, when they can be known statically: by
        default the input's, then those the block adds."""
        if columns is None:
            return None
        return list(dict.fromkeys([*columns, *self.produced_columns()]))


def require_columns(table: pd.DataFrame, columns: Sequence[str], block: str) -> None:
    """Raise :class:`MissingColumns` naming what is missing and what is there."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise MissingColumns(
            f"{block}: no column {', '.join(repr(c) for c in missing)}; the table has "
            f"{', '.join(repr(str(c)) for c in table.columns) or 'no columns'}.",
            missing=missing, columns=[str(c) for c in table.columns],
        )


def check_row_errors(kind: str, errors: Sequence[str | None], *, on_row_error: str,
                     max_error_ratio: float) -> None:
    """The rule of every block that works row by row, given each row's error (None: the
    row is fine): more failed rows than ``max_error_ratio`` of them, or any failed row
    with ``on_row_error: "fail"``, fail the block (:class:`BlockError`)."""
    failed = [message for message in errors if message is not None]
    if errors and len(failed) / len(errors) > max_error_ratio:
        raise BlockError(
            f"{kind}: {len(failed)} of {len(errors)} rows failed, more than "
            f"max_error_ratio {max_error_ratio}; first: {failed[0]}", failed_rows=len(failed))
    if failed and on_row_error == "fail":
        raise BlockError(f"{kind}: {len(failed)} rows failed; first: {failed[0]}",
                         failed_rows=len(failed))


def describe(error: Exception) -> dict[str, Any]:
    """How a block failure is recorded: a code and a message, never a traceback."""
    if isinstance(error, WorkflowError):
        return {"code": error.code, "message": error.detail, **{
            key: value for key, value in error.context.items() if value is not None}}
    return {"code": "block_crashed", "message": f"{type(error).__name__}: {error}"}
