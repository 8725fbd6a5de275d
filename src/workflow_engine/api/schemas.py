"""Request and response bodies of the REST API.

The same models validate requests, serialise responses and generate the OpenAPI
document, so the three cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from ..core import (
    ActionSpec,
    DefinitionSpec,
    Event,
    EventType,
    Instance,
    InstanceStatus,
    StateSpec,
    Workflow,
    available_actions,
)
from ..core.definitions import Identifier
from ..errors import Problem

__all__ = [
    "ActionOut",
    "AvailableActions",
    "DefinitionOut",
    "DefinitionPage",
    "DefinitionSummary",
    "DefinitionVersions",
    "EventOut",
    "HistoryPage",
    "InstanceOut",
    "InstancePage",
    "ProblemDetail",
    "StartInstance",
    "iso_ms",
]

MAX_CONTEXT_KEYS = 100


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC with millisecond precision."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[
    int,
    PlainSerializer(iso_ms, return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "format": "date-time"}),
]


class Out(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(frozen=True)


# -- requests ------------------------------------------------------------------------------


class StartInstance(BaseModel):
    """Body of ``POST /api/instances``."""

    model_config = ConfigDict(
        extra="forbid", strict=True, validate_by_name=True, validate_by_alias=True,
        alias_generator=lambda name: {"definition_id": "definitionId"}.get(name, name),
    )

    definition_id: Identifier
    version: int | None = Field(None, ge=1, description="Defaults to the latest version.")
    id: Identifier | None = Field(
        None, description="Choose the instance id to make the start idempotent."
    )
    context: dict[str, Any] = Field(
        default_factory=dict, max_length=MAX_CONTEXT_KEYS,
        description="Free-form data carried by the instance.",
    )


# -- responses -----------------------------------------------------------------------------


class ProblemOut(Out):
    """One finding in a problem's ``errors``."""

    path: str = Field(description="JSON path of the offending value, e.g. states[2].id")
    code: str
    message: str


class ProblemDetail(Out):
    """An error, as ``application/problem+json`` (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str = Field(description="The request path.")
    code: str = Field(description="Stable, machine-readable error code.")
    errors: list[ProblemOut] | None = None


class DefinitionOut(Out):
    """A stored definition version."""

    id: str
    version: int
    name: str
    description: str
    states: list[StateSpec]
    actions: list[ActionSpec]
    created_at: Timestamp
    warnings: list[ProblemOut]

    @classmethod
    def of(cls, workflow: Workflow) -> DefinitionOut:
        """The response for a workflow version."""
        spec: DefinitionSpec = workflow.spec
        return cls(
            id=spec.id, version=workflow.version, name=spec.name, description=spec.description,
            states=spec.states, actions=spec.actions, created_at=workflow.created_at,
            warnings=[ProblemOut(**_problem(p)) for p in workflow.warnings],
        )


def _problem(problem: Problem | dict[str, str]) -> dict[str, str]:
    return problem if isinstance(problem, dict) else problem.as_dict()


class DefinitionSummary(Out):
    """A definition in a listing: its latest version, without states and actions."""

    id: str
    version: int
    name: str
    description: str
    state_count: int
    action_count: int
    created_at: Timestamp

    @classmethod
    def of(cls, workflow: Workflow) -> DefinitionSummary:
        """The listing entry for a workflow version."""
        spec = workflow.spec
        return cls(
            id=spec.id, version=workflow.version, name=spec.name, description=spec.description,
            state_count=len(spec.states), action_count=len(spec.actions),
            created_at=workflow.created_at,
        )


class DefinitionVersions(Out):
    """Every version number of a definition, oldest first."""

    id: str
    versions: list[int]


class DefinitionPage(Out):
    """A page of definitions."""

    items: list[DefinitionSummary]
    next_cursor: str | None


class ActionOut(Out):
    """An action that can fire now, and where it leads."""

    id: str
    name: str
    description: str
    to_state: str

    @classmethod
    def of(cls, action: ActionSpec) -> ActionOut:
        """The response entry for an action."""
        return cls(
            id=action.id, name=action.name, description=action.description,
            to_state=action.to_state,
        )


class InstanceOut(Out):
    """An instance's current snapshot."""

    id: str
    definition_id: str
    definition_version: int
    current_state: str
    status: InstanceStatus
    is_final: bool
    available_actions: list[ActionOut]
    context: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp
    version: int = Field(description="Grows with every change; the ETag carries it.")

    @classmethod
    def of(cls, instance: Instance, workflow: Workflow) -> InstanceOut:
        """The response for an instance."""
        return cls(
            id=instance.id, definition_id=instance.definition_id,
            definition_version=instance.definition_version,
            current_state=instance.current_state, status=instance.status,
            is_final=workflow.states[instance.current_state].is_final,
            available_actions=[
                ActionOut.of(a) for a in available_actions(workflow, instance.current_state)
            ],
            context=instance.context, created_at=instance.created_at,
            updated_at=instance.updated_at, version=instance.version,
        )


class InstancePage(Out):
    """A page of instances."""

    items: list[InstanceOut]
    next_cursor: str | None


class AvailableActions(Out):
    """What an instance can do now."""

    instance_id: str
    current_state: str
    is_final: bool
    actions: list[ActionOut]


class EventOut(Out):
    """One history event."""

    seq: int
    type: EventType
    action_id: str | None
    from_state: str | None
    to_state: str
    at: Timestamp
    actor: str | None

    @classmethod
    def of(cls, event: Event) -> EventOut:
        """The response entry for an event."""
        return cls(
            seq=event.seq, type=event.type, action_id=event.action_id,
            from_state=event.from_state, to_state=event.to_state, at=event.at, actor=event.actor,
        )


class HistoryPage(Out):
    """A page of an instance's history, oldest first."""

    instance_id: str
    items: list[EventOut]
    next_cursor: str | None


class Health(Out):
    """Liveness."""

    status: str


class ApiHealth(Out):
    """Readiness: the database answers, and what it holds."""

    status: str
    database: str
    version: str
    uptime_seconds: float
    definitions: int
    instances: dict[str, int]
