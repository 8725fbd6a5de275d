"""The static pass over a definition's blocks: is there a table where one is needed, and
does it have the columns a block names?

Knowledge about the table flows along the graph from the initial state (which has no
table): through every action that can fire, and through ``on_error`` (which carries the
failed block's input). A block turns what arrives into what leaves (``read_csv`` of an
existing file knows its header; ``select_columns`` knows its output; the others pass
columns through). Where every path agrees that something is wrong, it is an error; where
only some paths do, a warning.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

from ..errors import Problem
from .definitions import ActionSpec, BlockSpec, StateSpec

__all__ = ["BlockCatalog", "check_blocks"]

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


def check_blocks(
    states: Sequence[tuple[int, StateSpec]],
    actions: Sequence[tuple[int, ActionSpec]],
    catalog: BlockCatalog,
) -> tuple[list[Problem], list[Problem]]:
    """Check every state's block and the table that reaches it; ``(errors, warnings)``.

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

    def leaving(state_id: str, arrived: Knowledge) -> Knowledge:
        block = usable.get(state_id)
        if block is None:
            return arrived
        if arrived == NO_TABLE and catalog.needs_table(block):
            return NO_TABLE
        columns = list(arrived) if isinstance(arrived, tuple) else None
        after = catalog.columns_after(block, columns)
        return tuple(after) if after is not None else None

    successors: dict[str, list[tuple[str, bool]]] = {state_id: [] for state_id in by_id}
    for _, action in actions:
        if action.enabled and by_id[action.to_state][1].enabled:
            for source in action.from_states:
                successors[source].append((action.to_state, False))
    for state_id, (_, state) in by_id.items():
        if state.on_error is not None and state_id in usable and state.on_error in by_id:
            successors[state_id].append((state.on_error, True))

    initial = next((s.id for _, s in states if s.is_initial), None)
    if initial is None:
        return errors, warnings
    arrivals: dict[str, set[Knowledge]] = {state_id: set() for state_id in by_id}
    arrivals[initial].add(NO_TABLE)
    queue = deque([initial])
    while queue:
        state_id = queue.popleft()
        for target, on_error in successors[state_id]:
            for arrived in list(arrivals[state_id]):
                carried = arrived if on_error else leaving(state_id, arrived)
                known = arrivals[target]
                if carried in known:
                    continue
                known.add(carried)
                if len(known) > MAX_POSSIBILITIES:
                    # Too many shapes to track: keep "there may be no table" and give up on columns.
                    has_none = NO_TABLE in known
                    known.clear()
                    known.update({None, NO_TABLE} if has_none else {None})
                queue.append(target)

    for state_id, block in usable.items():
        index = by_id[state_id][0]
        reaching = arrivals[state_id]
        if not reaching:
            continue
        path = f"states[{index}].block"
        if catalog.needs_table(block) and NO_TABLE in reaching:
            never = reaching == {NO_TABLE}
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
                    f"{path}.params", "unknown_column",
                    f"'{block.type}' in state '{state_id}' uses column '{column}', which is "
                    f"not among the columns known there: {listed}.",
                ))
            else:
                warnings.append(Problem(
                    f"{path}.params", "column_may_be_missing",
                    f"'{block.type}' in state '{state_id}' uses column '{column}', which "
                    f"some paths do not provide (one has: {listed}).",
                ))
    return errors, warnings
