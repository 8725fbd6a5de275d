"""The engine's pure core: definitions, validation and the state machine's rules.

Nothing here knows about HTTP, Flask or a database.
"""

from __future__ import annotations

from .definitions import ActionSpec, BlockSpec, DefinitionSpec, StateSpec, Workflow
from .history import Event, EventType
from .instances import Instance, InstanceStatus, TableInfo
from .machine import (
    Change,
    available_actions,
    block_cancelled,
    block_failed,
    block_succeeded,
    check_branch,
    check_fire,
    explain_actions,
    fire,
    replay,
    retry,
    start,
)
from .validation import DefinitionCheck, ValidatedDefinition, check_definition, validate_definition

__all__ = [
    "ActionSpec",
    "BlockSpec",
    "Change",
    "DefinitionCheck",
    "DefinitionSpec",
    "Event",
    "EventType",
    "Instance",
    "InstanceStatus",
    "StateSpec",
    "TableInfo",
    "ValidatedDefinition",
    "Workflow",
    "available_actions",
    "block_cancelled",
    "block_failed",
    "block_succeeded",
    "check_branch",
    "check_definition",
    "check_fire",
    "explain_actions",
    "fire",
    "replay",
    "retry",
    "start",
    "validate_definition",
]
