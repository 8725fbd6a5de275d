"""The engine's pure core: definitions, validation and the state machine's rules.

Nothing here knows about HTTP, Flask or a database.
"""

from __future__ import annotations

from .definitions import ActionSpec, DefinitionSpec, StateSpec, Workflow
from .history import Event, EventType
from .instances import Instance, InstanceStatus
from .machine import available_actions, check_fire, fire, replay, start
from .validation import ValidatedDefinition, validate_definition

__all__ = [
    "ActionSpec",
    "DefinitionSpec",
    "Event",
    "EventType",
    "Instance",
    "InstanceStatus",
    "StateSpec",
    "ValidatedDefinition",
    "Workflow",
    "available_actions",
    "check_fire",
    "fire",
    "replay",
    "start",
    "validate_definition",
]
