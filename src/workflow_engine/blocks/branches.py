"""``branches``: several blocks side by side on the same table, joined when all have ended.

A state with this block forks: each branch's block runs in its own thread on the state's
input table, with its own progress and its own cancel flag. When every branch has ended
the state joins them: the input table, with the columns each branch writes merged in by
row. So a branch must keep every row (a filter or a dedupe cannot be one), and two
branches may not write the same column; the definition's check refuses both.

Each branch's output is checkpointed as it succeeds. If another branch fails, or is
cancelled, retrying the state runs only what did not succeed: a paid branch is never run
twice, and neither is a call that must not be sent again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from pydantic import Field, field_validator

from ..core.definitions import BlockSpec
from ..core.spec import Identifier
from ..errors import Problem
from ..limits import DEFAULT_LIMITS, Limits
from ..storage import FileArea
from .base import (
    Block,
    BlockCancelled,
    BlockContext,
    BlockParams,
    BranchColumnConflict,
    BranchDropsRows,
    BranchesCancelled,
    BranchesFailed,
    describe,
)

if TYPE_CHECKING:
    from . import Catalog

__all__ = ["BranchSpec", "Branches", "BranchesParams"]

MAX_BRANCHES = 8
# How often the fork looks for a cancel of the whole block or of one branch while its
# branches run (the cancel flags are set by other threads; waiting on all of them at once
# is not something threading offers).
_WATCH_SECONDS = 0.05


class BranchSpec(BlockParams):
    """One branch: its id and the block it runs."""

    id: Identifier = Field(description="Unique among the state's branches.")
    name: str = Field("", max_length=200, description="Shown in progress and history.")
    block: BlockSpec


class BranchesParams(BlockParams):
    """Parameters of ``branches``."""

    branches: list[BranchSpec] = Field(min_length=2, max_length=MAX_BRANCHES)

    @field_validator("branches")
    @classmethod
    def _unique_ids(cls, branches: list[BranchSpec]) -> list[BranchSpec]:
        seen: set[str] = set()
        for branch in branches:
            if branch.id in seen:
                raise ValueError(f"two branches have the id {branch.id!r}")
            seen.add(branch.id)
        return branches


@dataclass
class _Outcome:
    status: str  # succeeded, failed, cancelled
    table: pd.DataFrame | None = None
    error: dict[str, Any] | None = None
    reused: bool = False
    started_at: int | None = None
    finished_at: int | None = None


def _now() -> int:
    return int(time.time() * 1000)


def checkpoint_name(branch: BranchSpec) -> str:
    """What a branch's checkpoint is stored under: a digest of its id and its block, so a
    branch that changed never reuses the old one's output (and any id makes a file name)."""
    content = branch.id + "\n" + branch.block.model_dump_json()
    return "branch-" + hashlib.sha256(content.encode()).hexdigest()[:24]


class Branches(Block[BranchesParams]):
    """Run several blocks side by side on the input table and join their columns."""

    kind = "branches"
    description = ("Run several blocks side by side on the same table (a fork), then merge "
                   "the columns each one writes back into one table by row (the join).")
    Params = BranchesParams
    requires = "what each branch's block requires"
    produces = "the input table with every branch's columns"
    composite: ClassVar[bool] = True

    def __init__(self, params: BranchesParams, limits: Limits = DEFAULT_LIMITS, *,
                 catalog: Catalog) -> None:
        super().__init__(params, limits)
        self.catalog = catalog

    @cached_property
    def parts(self) -> list[tuple[BranchSpec, Block[Any]]]:
        """Each branch with its configured block (only once the specs have been checked)."""
        return [(branch, self.catalog.build(branch.block)) for branch in self.params.branches]

    # -- what the static check needs ----------------------------------------------------

    def check_parts(self, path: str) -> list[Problem]:
        """Problems with the branches: their blocks, a branch that drops or makes rows, a
        nested fork, and columns written by two branches."""
        problems: list[Problem] = []
        for index, branch in enumerate(self.params.branches):
            at = f"{path}.branches[{index}].block"
            found = self.catalog.check(branch.block, at)
            if found:
                problems.extend(found)
                continue
            block = self.catalog.build(branch.block)
            if block.composite:
                problems.append(Problem(at, "nested_branches",
                                        f"Branch '{branch.id}' is itself a fork; a branch "
                                        "runs one block."))
            elif not block.keeps_rows():
                problems.append(Problem(at, "branch_changes_rows",
                                        f"Branch '{branch.id}' runs {branch.block.type}, which "
                                        "may drop or add rows; branches are joined by row, "
                                        "so each must keep every row (a filter or a dedupe "
                                        "goes before or after the fork)."))
        if problems:
            return problems
        writers: dict[str, str] = {}
        for index, (branch, block) in enumerate(self.parts):
            for column in block.produced_columns():
                other = writers.setdefault(column, branch.id)
                if other != branch.id:
                    problems.append(Problem(
                        f"{path}.branches[{index}].block.params", "branch_column_conflict",
                        f"Branches '{other}' and '{branch.id}' both write column '{column}'; "
                        "the join could keep only one. Give one of them another output "
                        "column or prefix."))
        return problems

    def required_columns(self) -> list[str]:
        """Every column some branch needs."""
        return list(dict.fromkeys(c for _, block in self.parts for c in block.required_columns()))

    def produced_columns(self) -> list[str]:
        """Every column some branch writes."""
        return list(dict.fromkeys(c for _, block in self.parts for c in block.produced_columns()))

    def keeps_rows(self) -> bool:
        """The join keeps the input's rows."""
        return True

    def columns_after(self, columns: Sequence[str] | None, files: FileArea) -> list[str] | None:
        """The input's columns, then each branch's new ones in branch order."""
        if columns is None:
            return None
        joined = list(columns)
        for _, block in self.parts:
            after = block.columns_after(columns, files)
            if after is None:
                return None
            joined.extend(c for c in after if c not in joined)
        return joined

    # -- running --------------------------------------------------------------------------

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        assert table is not None
        outcomes: dict[str, _Outcome] = {}
        for branch, _ in self.parts:
            saved = context.checkpoints.load(checkpoint_name(branch)) if context.checkpoints \
                else None
            if saved is not None:
                outcomes[branch.id] = _Outcome("succeeded", saved, reused=True)
        flags = {branch.id: threading.Event() for branch, _ in self.parts}
        progress = _BranchProgress(self.parts, context, outcomes)
        todo = [(branch, block) for branch, block in self.parts if branch.id not in outcomes]
        progress.report()
        if todo:
            with ThreadPoolExecutor(max_workers=len(todo),
                                    thread_name_prefix="branch") as pool:
                running: dict[Future[_Outcome], str] = {
                    pool.submit(self._run_branch, branch, block, table, context,
                                progress, flags[branch.id]): branch.id
                    for branch, block in todo
                }
                while running:
                    done, _ = wait(running, timeout=_WATCH_SECONDS, return_when=FIRST_COMPLETED)
                    for future in done:
                        outcomes[running.pop(future)] = future.result()
                        progress.report()
                    stop = set(flags) if context.cancel.is_set() else context.cancelled_branches()
                    for branch_id in stop:
                        flags[branch_id].set()
        progress.report()
        summary = {branch.id: {
            "name": branch.name or branch.id, "block": branch.block.type,
            "status": outcomes[branch.id].status, "reused": outcomes[branch.id].reused,
            **({"error": outcomes[branch.id].error} if outcomes[branch.id].error else {}),
            **({"rows_out": len(outcomes[branch.id].table)}  # type: ignore[arg-type]
               if outcomes[branch.id].table is not None else {}),
            **{key: value for key in ("started_at", "finished_at")
               if (value := getattr(outcomes[branch.id], key)) is not None},
        } for branch, _ in self.parts}
        context.details["branches"] = summary
        if context.cancel.is_set():
            raise BlockCancelled("The block was cancelled.")
        failed = [b for b, o in outcomes.items() if o.status == "failed"]
        if failed:
            raise BranchesFailed(
                f"Branch{'es' if len(failed) > 1 else ''} {', '.join(repr(b) for b in failed)} "
                "failed; retrying the state runs only the branches that did not succeed.",
                branches=summary)
        cancelled = [b for b, o in outcomes.items() if o.status == "cancelled"]
        if cancelled:
            raise BranchesCancelled(
                f"Branch{'es' if len(cancelled) > 1 else ''} "
                f"{', '.join(repr(b) for b in cancelled)} cancelled; retrying the state runs "
                "only the branches that did not succeed.", branches=summary)
        return self.join(table, [(branch, outcomes[branch.id].table)
                                 for branch, _ in self.parts])

    def _run_branch(self, branch: BranchSpec, block: Block[Any], table: pd.DataFrame,
                    context: BlockContext, progress: _BranchProgress,
                    cancel: threading.Event) -> _Outcome:
        started_at = _now()
        own = replace(context, progress=progress.updater(branch.id),
                      sent=progress.sender(branch.id), cancel=cancel, checkpoints=None,
                      details={}, cancelled_branches=set,
                      step=f"{context.step}/{branch.id}" if context.step else branch.id)
        try:
            # Each branch gets its own copy: a block may change its input in place.
            output = block(table.copy(), own)
            if len(output) != len(table):
                raise BranchDropsRows(
                    f"Branch '{branch.id}' returned {len(output)} rows for {len(table)}; a "
                    "branch must keep every row to be joined.", branch=branch.id)
        except BlockCancelled:
            return _Outcome("cancelled", started_at=started_at, finished_at=_now())
        except Exception as exc:  # a branch's failure is reported with the others
            return _Outcome("failed", error=describe(exc), started_at=started_at,
                            finished_at=_now())
        if context.checkpoints is not None:
            context.checkpoints.save(checkpoint_name(branch), output)
        return _Outcome("succeeded", output, started_at=started_at, finished_at=_now())

    def partial(self, table: pd.DataFrame, enricher: Any) -> pd.DataFrame:
        """The input with the answers each branch has so far, for the branches that can
        tell (the enrichment blocks); the others' columns come with the join."""
        joined = table.copy()
        for _, block in self.parts:
            so_far = getattr(block, "partial", None)
            if so_far is None:
                continue
            output = so_far(table.copy(), enricher)
            declared = set(block.produced_columns())
            for column in output.columns:
                if column not in table.columns or column in declared:
                    joined[column] = output[column].to_numpy()
        return joined

    def join(self, table: pd.DataFrame,
             outputs: Sequence[tuple[BranchSpec, pd.DataFrame | None]]) -> pd.DataFrame:
        """The input with each branch's columns: those it adds, and those it declares it
        writes (a found email fills the input's own ``email`` column)."""
        joined = table.copy()
        writers: dict[str, str] = {}
        for (branch, output), (_, block) in zip(outputs, self.parts, strict=True):
            assert output is not None
            declared = set(block.produced_columns())
            written = [c for c in output.columns if c not in table.columns or c in declared]
            for column in written:
                other = writers.setdefault(str(column), branch.id)
                if other != branch.id:
                    raise BranchColumnConflict(
                        f"Branches '{other}' and '{branch.id}' both wrote column "
                        f"'{column}'; the join could keep only one.", column=str(column))
                joined[column] = output[column].to_numpy()
        return joined


class _BranchProgress:
    """The branches' progress, each on its own and summed for the state."""

    def __init__(self, parts: Sequence[tuple[BranchSpec, Block[Any]]], context: BlockContext,
                 outcomes: dict[str, _Outcome]) -> None:
        self.context = context
        self.outcomes = outcomes
        self.lock = threading.Lock()
        self.rows: dict[str, dict[str, Any]] = {
            branch.id: {"id": branch.id, "name": branch.name or branch.id,
                        "block": branch.block.type, "rows_done": 0, "rows_total": None,
                        "rows_sent": None}
            for branch, _ in parts}

    def updater(self, branch_id: str) -> Callable[[int, int | None], None]:
        def update(done: int, total: int | None) -> None:
            with self.lock:
                self.rows[branch_id]["rows_done"] = done
                if total is not None:
                    self.rows[branch_id]["rows_total"] = total
            self.report()
        return update

    def sender(self, branch_id: str) -> Callable[[int], None]:
        def sent(rows: int) -> None:
            with self.lock:
                self.rows[branch_id]["rows_sent"] = rows
            self.report()
        return sent

    def report(self) -> None:
        """Tell the run how far each branch and the whole fork have got."""
        with self.lock:
            rows = [dict(found, status=self.outcomes[branch_id].status
                         if branch_id in self.outcomes else "running")
                    for branch_id, found in self.rows.items()]
        for found in rows:
            outcome = self.outcomes.get(found["id"])
            if outcome is not None and outcome.table is not None:
                found["rows_done"] = found["rows_total"] = len(outcome.table)
        totals = [found["rows_total"] for found in rows]
        sent = [found["rows_sent"] for found in rows if found["rows_sent"] is not None]
        self.context.branches(rows)
        self.context.progress(sum(found["rows_done"] for found in rows),
                              None if None in totals else sum(totals))
        if sent:
            self.context.sent(sum(sent))
