"""The static pass over a definition's blocks: is there a table where one is needed, and
does it have the columns a block names?

Knowledge about the table flows along the graph from the initial state (which has no
table): through every action that can fire, and through ``on_error`` (which carries the
failed block's input). A block turns what arrives into what leaves (``read_csv`` of an
existing file knows its header; ``select_columns`` knows its output; the others pass
columns through). Where every path agrees that something is wrong, it is an error; where
only some paths do, a warning.

The same pass says what it knows of the table on arrival in each state and on leaving it
(:meth:`TableFlow.state_tables`), so a client can show the columns known at each point.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import Problem
from .definitions import ActionSpec, BlockSpec, StateSpec

__all__ = [
    "MAX_POSSIBILITIES",
    "NO_TABLE",
    "BlockCatalog",
    "BlockCheck",
    "Knowledge",
    "StateTables",
    "TableFlow",
    "TableKnowledge",
    "check_blocks",
]

# What is known of the table on arrival in a state: no table yet, a table with unknown
# columns (None), or a table with these columns.
NO_TABLE = "no table"
Knowledge = str | None | tuple[str, ...]
MAX_POSSIBILITIES = 8


class BlockCatalog(Protocol):
    """What validation needs to know about blocks (implemented by ``blocks.Catalog``)."""

    def check(self, spec: BlockSpec, path: str) -> list[Problem]:
        """Problems with a block spec: unknown type, bad parameters."""

    def needs_table(self, spec: BlockSpec) -> bool:
        """Whether the block reads an input table."""

    def required_columns(self, spec: BlockSpec) -> list[str]:
        """Columns the input must have."""

    def columns_after(self, spec: BlockSpec, columns: list[str] | None) -> list[str] | None:
        """The output's columns, if they can be known."""

    def column_path(self, spec: BlockSpec, column: str) -> str:
        """Where in the block's params ``column`` is named (a JSON path suffix such as
        ``.url``), or ``""`` when the params as a whole are the best place to point at."""


@dataclass(frozen=True)
class TableKnowledge:
    """What the pass knows of the table at one point, over every path that gets there.

    ``no_table``: some path gets there with no table yet. ``tables``: the tables that may
    be there, one per set of columns the pass tells apart (in the order it found them),
    each its columns or None when they cannot be known statically. Neither: no path gets
    there.
    """

    no_table: bool
    tables: tuple[tuple[str, ...] | None, ...]

    @classmethod
    def of(cls, possibilities: Iterable[Knowledge]) -> TableKnowledge:
        """Knowledge from the pass's possibilities."""
        found = list(possibilities)
        return cls(NO_TABLE in found,
                   tuple(k for k in found if k is None or isinstance(k, tuple)))

    @property
    def columns(self) -> tuple[str, ...] | None:
        """The columns certainly there: those every table that may be there has. None
        unless some table may be there and every one has known columns."""
        known = [table for table in self.tables if table is not None]
        if not known or len(known) != len(self.tables):
            return None
        first, *others = known
        sets = [set(other) for other in others]
        return tuple(column for column in first if all(column in other for other in sets))


@dataclass(frozen=True)
class StateTables:
    """What the pass knows of a state's table on arrival, and on leaving after its block."""

    arriving: TableKnowledge
    leaving: TableKnowledge


class TableFlow:
    """Knowledge of the table flowing from the initial state along the graph.

    It flows through every action that can fire (enabled, into an enabled state) and
    through ``on_error`` (which carries the failed block's input); ``blocks`` are the
    blocks that passed the catalog's check (any other state passes its table on).
    """

    def __init__(
        self,
        states: Sequence[tuple[int, StateSpec]],
        actions: Sequence[tuple[int, ActionSpec]],
        catalog: BlockCatalog,
        blocks: dict[str, BlockSpec],
        initial: str,
    ) -> None:
        self.catalog = catalog
        self.blocks = blocks
        # A block's output depends on its spec and its input only: states with the same
        # block (say, reads of one file) share the work, a header read once per pass.
        self._specs = {state_id: block.model_dump_json() for state_id, block in blocks.items()}
        self._leaving: dict[tuple[str, Knowledge], Knowledge] = {}
        by_id = {state.id: state for _, state in states}
        successors: dict[str, list[tuple[str, bool]]] = {state_id: [] for state_id in by_id}
        for _, action in actions:
            if action.enabled and by_id[action.to_state].enabled:
                for source in action.from_states:
                    successors[source].append((action.to_state, False))
        for state_id, state in by_id.items():
            if state.on_error is not None and state_id in blocks and state.on_error in by_id:
                successors[state_id].append((state.on_error, True))

        # Dicts as ordered sets: the possibilities come out in the order they were found.
        self.arrivals: dict[str, dict[Knowledge, None]] = {state_id: {} for state_id in by_id}
        self.arrivals[initial][NO_TABLE] = None
        queue = deque([initial])
        while queue:
            state_id = queue.popleft()
            for target, on_error in successors[state_id]:
                for arrived in list(self.arrivals[state_id]):
                    carried = arrived if on_error else self.leaving(state_id, arrived)
                    known = self.arrivals[target]
                    if carried in known:
                        continue
                    known[carried] = None
                    if len(known) > MAX_POSSIBILITIES:
                        # Too many shapes to track: keep "there may be no table" and give
                        # up on columns.
                        may_lack_table = NO_TABLE in known
                        known.clear()
                        known.update(dict.fromkeys(
                            (NO_TABLE, None) if may_lack_table else (None,)))
                    queue.append(target)

    def leaving(self, state_id: str, arrived: Knowledge) -> Knowledge:
        """What leaves a state, after its block, when ``arrived`` arrived."""
        block = self.blocks.get(state_id)
        if block is None:
            return arrived
        key = (self._specs[state_id], arrived)
        if key not in self._leaving:
            if arrived == NO_TABLE and self.catalog.needs_table(block):
                after: Knowledge = NO_TABLE
            else:
                columns = list(arrived) if isinstance(arrived, tuple) else None
                found = self.catalog.columns_after(block, columns)
                after = tuple(found) if found is not None else None
            self._leaving[key] = after
        return self._leaving[key]

    def state_tables(self) -> dict[str, StateTables]:
        """Every state's table on arrival and on leaving, by id, in the document's order."""
        return {
            state_id: StateTables(
                TableKnowledge.of(arrived),
                TableKnowledge.of(dict.fromkeys(
                    self.leaving(state_id, known) for known in arrived)),
            )
            for state_id, arrived in self.arrivals.items()
        }


@dataclass(frozen=True)
class BlockCheck:
    """What the block pass found: errors, warnings, and the table's flow (None when
    there is no initial state to start it from)."""

    errors: list[Problem]
    warnings: list[Problem]
    flow: TableFlow | None


def check_blocks(
    states: Sequence[tuple[int, StateSpec]],
    actions: Sequence[tuple[int, ActionSpec]],
    catalog: BlockCatalog,
) -> BlockCheck:
    """Check every state's block and the table that reaches it.

    Expects a graph that passed ``check_graph`` (ids unique, references resolved).
    """
    errors: list[Problem] = []
    warnings: list[Problem] = []
    by_id = {state.id: (index, state) for index, state in states}
    usable: dict[str, BlockSpec] = {}
    for index, state in states:
        if state.block is not None:
            found = catalog.check(state.block, f"states[{index}].block")
            errors.extend(found)
            if not found:
                usable[state.id] = state.block

    initial = next((s.id for _, s in states if s.is_initial), None)
    if initial is None:
        return BlockCheck(errors, warnings, None)
    flow = TableFlow(states, actions, catalog, usable, initial)

    for state_id, block in usable.items():
        index = by_id[state_id][0]
        reaching = flow.arrivals[state_id]
        if not reaching:
            continue
        path = f"states[{index}].block"
        if catalog.needs_table(block) and NO_TABLE in reaching:
            never = len(reaching) == 1
            problem = Problem(
                path, "block_needs_table",
                f"'{block.type}' in state '{state_id}' needs a table, but "
                + ("no path to it passes" if never else "some path to it does not pass")
                + " through a block that produces one (such as read_csv).",
            )
            (errors if never else warnings).append(problem)
        shapes = [k for k in reaching if isinstance(k, tuple)]
        tables = [k for k in reaching if k != NO_TABLE]
        for column in catalog.required_columns(block):
            lacking = [k for k in shapes if column not in k]
            if not lacking:
                continue
            listed = ", ".join(repr(c) for c in lacking[0]) or "none"
            if len(lacking) == len(tables):
                errors.append(Problem(
                    f"{path}.params{catalog.column_path(block, column)}", "unknown_column",
                    f"'{block.type}' in state '{state_id}' uses column '{column}', which is "
                    f"not among the columns known there: {listed}.",
                ))
            else:
                warnings.append(Problem(
                    f"{path}.params{catalog.column_path(block, column)}",
                    "column_may_be_missing",
                    f"'{block.type}' in state '{state_id}' uses column '{column}', which "
                    f"some paths do not provide (one has: {listed}).",
                ))
    return BlockCheck(errors, warnings, flow)
