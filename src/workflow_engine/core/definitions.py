"""What a workflow definition is: the JSON document, and its compiled runtime form.

The pydantic models here are the single source of truth for a definition's shape: they
validate requests, serialise responses and generate the OpenAPI schema. Fields are
snake_case; the camelCase spelling of the original specification (``isInitial``,
``fromStates``...) is accepted on input too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from pydantic import Field

from .conditions import Guard
from .spec import ID_PATTERN, Description, Identifier, Name, SpecModel
from .triggers import MAX_TRIGGERS, TriggerSpec

__all__ = [
    "ID_PATTERN",
    "MAX_ACTIONS",
    "MAX_STATES",
    "ActionSpec",
    "BlockSpec",
    "DefinitionSpec",
    "Identifier",
    "StateSpec",
    "TriggerSpec",
    "Workflow",
]

MAX_STATES = 500
MAX_ACTIONS = 2000
MAX_FROM_STATES = MAX_STATES


class BlockSpec(SpecModel):
    """The data block a state runs when it is entered."""

    type: str = Field(min_length=1, max_length=64, description="A block type (GET /api/blocks).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The block's parameters; checked against its schema."
    )


class StateSpec(SpecModel):
    """One state of a workflow."""

    id: Identifier = Field(description="Unique within the definition.")
    name: Name
    is_initial: bool = Field(False, description="Exactly one state is initial.")
    is_final: bool = Field(False, description="No action may leave a final state.")
    enabled: bool = Field(True, description="A disabled state cannot be entered.")
    description: Description = ""
    block: BlockSpec | None = Field(
        None, description="Run this block on the instance's table when the state is entered."
    )
    on_error: Identifier | None = Field(
        None, description="Where to go when the block fails; without it the instance "
        "stays here with status failed."
    )


class ActionSpec(SpecModel):
    """One action: a named transition from any of ``from_states`` to ``to_state``."""

    id: Identifier = Field(description="Unique within the definition; fired by this id.")
    name: Name
    enabled: bool = Field(True, description="A disabled action cannot fire.")
    from_states: list[Identifier] = Field(min_length=1, max_length=MAX_FROM_STATES)
    to_state: Identifier
    description: Description = ""
    trigger: Literal["manual", "auto"] = Field(
        "manual", description="auto: fires by itself once the state's block has succeeded "
        "(or at once on entering a state without a block)."
    )
    condition: Guard | None = Field(
        None, description="Available only when these conditions on the instance hold."
    )


class DefinitionSpec(SpecModel):
    """A workflow definition as posted: states and the actions between them."""

    id: Identifier
    name: Name
    description: Description = ""
    states: list[StateSpec] = Field(min_length=1, max_length=MAX_STATES)
    actions: list[ActionSpec] = Field(default_factory=list, max_length=MAX_ACTIONS)
    triggers: list[TriggerSpec] = Field(
        default_factory=list, max_length=MAX_TRIGGERS,
        description="What starts instances besides POST /api/instances: webhooks and "
        "schedules.")

    def canonical_json(self) -> str:
        """The content as canonical JSON: equal definitions give equal text.

        Defaults are left out, so a field added later with a default does not change the
        identity of definitions stored before it existed.
        """
        content = self.model_dump(mode="json", exclude_defaults=True)
        return json.dumps(content, sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        """A digest of the canonical content, used to recognise a re-POST of the same thing."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


@dataclass(frozen=True)
class Workflow:
    """A validated definition at one version, indexed for fast lookups at run time."""

    spec: DefinitionSpec
    version: int
    created_at: int = 0
    warnings: tuple[Any, ...] = field(default=(), compare=False)

    @property
    def id(self) -> str:
        """The definition's id."""
        return self.spec.id

    @cached_property
    def states(self) -> Mapping[str, StateSpec]:
        """States by id."""
        return {state.id: state for state in self.spec.states}

    @cached_property
    def actions(self) -> Mapping[str, ActionSpec]:
        """Actions by id."""
        return {action.id: action for action in self.spec.actions}

    @cached_property
    def triggers(self) -> Mapping[str, TriggerSpec]:
        """Triggers by id."""
        return {trigger.id: trigger for trigger in self.spec.triggers}

    @cached_property
    def initial_state(self) -> StateSpec:
        """The one initial state (validation guarantees there is exactly one)."""
        return next(state for state in self.spec.states if state.is_initial)

    @cached_property
    def _actions_from(self) -> Mapping[str, tuple[ActionSpec, ...]]:
        outgoing: dict[str, list[ActionSpec]] = {state_id: [] for state_id in self.states}
        for action in self.spec.actions:
            for state_id in action.from_states:
                outgoing.setdefault(state_id, []).append(action)
        return {state_id: tuple(actions) for state_id, actions in outgoing.items()}

    def actions_from(self, state_id: str) -> tuple[ActionSpec, ...]:
        """Every action, enabled or not, that leaves ``state_id``, in definition order."""
        return self._actions_from.get(state_id, ())
