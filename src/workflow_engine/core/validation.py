"""Validation of workflow definitions: every problem at once, each with its JSON path.

Three passes. The shape pass is pydantic's (types, ids, limits, unknown fields). The graph
pass (``graph.py``) checks what a schema cannot: one initial state, unique ids, references
to existing states, nothing leaving a final state. It runs on every element that passed
the shape pass, so a client sees all its mistakes in one answer instead of one per round
trip. The block pass (``dataflow.py``) checks the blocks and the table reaching each.

Warnings flag definitions that are legal but probably not what was meant (unreachable
states, dead ends); ``strict`` turns them into errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_snake

from ..errors import DefinitionInvalid, Problem
from .dataflow import BlockCatalog, StateTables, TableFlow, check_blocks
from .definitions import ActionSpec, DefinitionSpec, StateSpec
from .graph import check_graph
from .spec import ID_PATTERN
from .suggestions import suggest_field
from .triggers import TriggerSpec, check_triggers

__all__ = [
    "DefinitionCheck",
    "ValidatedDefinition",
    "check_definition",
    "format_path",
    "validate_definition",
]


@dataclass(frozen=True)
class ValidatedDefinition:
    """A definition that passed validation, with the warnings it raised."""

    spec: DefinitionSpec
    warnings: tuple[Problem, ...]


@dataclass(frozen=True)
class DefinitionCheck:
    """What validation found in a document, valid or not.

    ``spec`` is None when the document does not have the definition's shape. ``flow`` is
    the table's flow when the block pass ran (the graph had no errors, blocks could be
    checked and there is an initial state), else None.
    """

    spec: DefinitionSpec | None
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    flow: TableFlow | None

    @property
    def valid(self) -> bool:
        """Whether the definition would be stored."""
        return self.spec is not None and not self.errors

    def state_tables(self) -> dict[str, StateTables] | None:
        """Each state's table on arrival and on leaving, if the block pass ran."""
        return self.flow.state_tables() if self.flow is not None else None


def format_path(loc: Iterable[int | str]) -> str:
    """Render a pydantic location as a JSON path: ``("states", 2, "id")`` -> ``states[2].id``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


_SHAPE_CODES = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "string_pattern_mismatch": "invalid_id",
    "string_too_short": "too_short",
    "string_too_long": "too_long",
    "too_short": "too_short",
    "too_long": "too_long",
}


def _shape_code(error_type: str, loc: tuple[int | str, ...]) -> str:
    if error_type == "too_long" and loc in {("states",), ("actions",)}:
        return f"too_many_{loc[0]}"
    if error_type.endswith("_type") or error_type in {"model_type", "model_attributes_type"}:
        return "wrong_type"
    return _SHAPE_CODES.get(error_type, error_type)


def shape_problems(
    error: ValidationError, model: type[BaseModel] | None = None
) -> list[Problem]:
    """Turn a pydantic error into problems with JSON paths and stable codes.

    An unknown field close to a known one of ``model`` (the model that was validated)
    gets "did you mean ...?".
    """
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        if item["type"] != "extra_forbidden":
            # Paths name fields as documented (snake_case), whichever spelling was sent;
            # an unknown field keeps the client's spelling, the only one there is.
            loc = tuple(to_snake(part) if isinstance(part, str) else part for part in loc)
        code = _shape_code(item["type"], loc)
        if code == "invalid_id" and item.get("ctx", {}).get("pattern") != ID_PATTERN:
            code = "invalid_format"
        message = item["msg"]
        meant = suggest_field(model, loc) if code == "unknown_field" and model else None
        if meant is not None:
            message += f"; did you mean '{meant}'?"
        problems.append(Problem(format_path(loc) or "$", code, message))
    return problems


def _salvage(raw: Any, key: str, model: type[Any]) -> tuple[list[tuple[int, Any]], bool]:
    """Elements of ``raw[key]`` usable by the graph pass, with their index; and whether
    every element was usable.

    An element with a bad optional field (``"is_final": "yes"``) is kept with that field
    at its default, so the graph pass can still report its duplicate id or dangling
    reference; one with a bad required field is left out.
    """
    items = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(items, list):
        return [], False
    usable, complete = [], True
    for index, item in enumerate(items):
        try:
            usable.append((index, model.model_validate(item)))
            continue
        except ValidationError as exc:
            complete = False
            bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
        if isinstance(item, dict):
            try:
                usable.append((index, model.model_validate(
                    {name: value for name, value in item.items() if name not in bad}
                )))
            except ValidationError:
                continue
    return usable, complete


def check_definition(
    raw: Any, *, strict: bool = False, catalog: BlockCatalog | None = None
) -> DefinitionCheck:
    """Everything validation finds in a definition document, valid or not; raises nothing.

    ``strict`` reports warnings as errors. ``catalog`` knows the block types; without one,
    a definition with blocks is invalid.
    """
    errors: list[Problem] = []
    spec: DefinitionSpec | None = None
    try:
        spec = DefinitionSpec.model_validate(raw)
    except ValidationError as exc:
        errors.extend(shape_problems(exc, DefinitionSpec))

    if spec is not None:
        states, all_states = list(enumerate(spec.states)), True
        actions = list(enumerate(spec.actions))
    else:
        states, all_states = _salvage(raw, "states", StateSpec)
        actions, _ = _salvage(raw, "actions", ActionSpec)
    graph_errors, warnings = check_graph(states, actions, all_states=all_states)
    errors.extend(graph_errors)
    triggers = list(enumerate(spec.triggers)) if spec is not None else \
        _salvage(raw, "triggers", TriggerSpec)[0]
    initial = [state for _, state in states if state.is_initial]
    if triggers and len(initial) == 1:
        block = initial[0].block
        # A salvaged trigger lost its bad field: its absence is no second problem.
        reported = {problem.path for problem in errors}
        errors.extend(problem for problem in check_triggers(
            triggers, block.type if block else None) if problem.path not in reported)
    if spec is None:
        # Warnings judge the whole graph; from a partly read document they would mislead.
        warnings = []
    flow: TableFlow | None = None
    if not graph_errors:
        if catalog is not None:
            blocks = check_blocks(states, actions, catalog)
            errors.extend(blocks.errors)
            warnings.extend(blocks.warnings)
            flow = blocks.flow
        else:
            errors.extend(
                Problem(f"states[{index}].block", "blocks_unavailable",
                        "This validation has no block catalog.")
                for index, state in states if state.block is not None
            )
    if strict:
        errors.extend(warnings)
        warnings = []
    return DefinitionCheck(spec, tuple(errors), tuple(warnings), flow)


def validate_definition(
    raw: Any, *, strict: bool = False, catalog: BlockCatalog | None = None
) -> ValidatedDefinition:
    """Validate a definition document, raising :class:`DefinitionInvalid` with every problem.

    ``strict`` and ``catalog`` as for :func:`check_definition`.
    """
    checked = check_definition(raw, strict=strict, catalog=catalog)
    if checked.errors or checked.spec is None:
        count = len(checked.errors)
        raise DefinitionInvalid(
            f"The definition has {count} problem{'s' if count != 1 else ''}.",
            errors=checked.errors,
        )
    return ValidatedDefinition(checked.spec, checked.warnings)
