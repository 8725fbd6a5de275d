"""Request and response bodies of the REST API.

The same models validate requests, serialise responses and generate the OpenAPI
document, so the three cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from ..auth import Scope
from ..blocks.estimate import RunEstimate
from ..core import (
    ActionSpec,
    DefinitionCheck,
    DefinitionSpec,
    Event,
    EventType,
    Instance,
    InstanceStatus,
    StateSpec,
    Workflow,
    available_actions,
)
from ..core.dataflow import TableKnowledge
from ..core.definitions import Identifier, TriggerSpec
from ..core.triggers import TriggerType
from ..errors import Problem
from ..service import TriggerInfo

__all__ = [
    "ActionOut",
    "AvailableActions",
    "DefinitionCheckOut",
    "DefinitionOut",
    "DefinitionPage",
    "DefinitionSummary",
    "DefinitionVersions",
    "EventOut",
    "HistoryPage",
    "HookToken",
    "InstanceOut",
    "InstancePage",
    "ProblemDetail",
    "ProgressEvent",
    "StartInstance",
    "StateTablesOut",
    "StreamEnd",
    "TableKnowledgeOut",
    "TriggerList",
    "TriggerOut",
    "WhoAmI",
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
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Defaults to the latest version."
    )
    id: Identifier | None = Field(
        None, description="Choose the instance id to make the start idempotent."
    )
    context: dict[str, Any] = Field(
        default_factory=dict, max_length=MAX_CONTEXT_KEYS,
        description="Free-form data carried by the instance.",
    )
    inputs: dict[Identifier, dict[str, Any]] = Field(
        default_factory=dict, max_length=MAX_CONTEXT_KEYS,
        description="Block parameters for this run, by state id, over the definition's "
        "own: e.g. another input file for a read_csv state, or max_rows for a trial run.",
    )


class EstimateRun(BaseModel):
    """Body of ``POST /api/definitions/{id}/estimate``: the run to estimate."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Defaults to the latest version."
    )
    inputs: dict[Identifier, dict[str, Any]] = Field(
        default_factory=dict, max_length=MAX_CONTEXT_KEYS,
        description="The inputs the run would be started with (as POST /api/instances).")


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
    rule: str | None = Field(
        None, description="malformed_json only: the rule of strict JSON the body breaks "
        "(syntax, encoding, non_finite, number, duplicate_key, depth, surrogate).")


class DefinitionOut(Out):
    """A stored definition version."""

    id: str
    version: int
    name: str
    description: str
    states: list[StateSpec]
    actions: list[ActionSpec]
    triggers: list[TriggerSpec]
    created_at: Timestamp
    warnings: list[ProblemOut]
    hook_tokens: dict[str, str] | None = Field(
        None, description="The tokens this save issued to webhook triggers declared for the "
        "first time, by trigger id: shown once, in this answer only (the server keeps their "
        "digests). Rotate one with POST .../triggers/{trigger_id}/token. Null otherwise.")

    @classmethod
    def of(cls, workflow: Workflow, hook_tokens: dict[str, str] | None = None
           ) -> DefinitionOut:
        """The response for a workflow version (with the tokens a save issued)."""
        spec: DefinitionSpec = workflow.spec
        return cls(
            id=spec.id, version=workflow.version, name=spec.name, description=spec.description,
            states=spec.states, actions=spec.actions, triggers=spec.triggers,
            created_at=workflow.created_at,
            warnings=[ProblemOut(**_problem(p)) for p in workflow.warnings],
            hook_tokens=hook_tokens or None,
        )


def _problem(problem: Problem | dict[str, str]) -> dict[str, str]:
    return problem if isinstance(problem, dict) else problem.as_dict()


class TableKnowledgeOut(Out):
    """What is known, before running, of the table at one point of a definition, over
    every path that gets there."""

    columns: list[str] | None = Field(description="The columns certainly there: those "
                                      "every table in `tables` has. null when that cannot "
                                      "be known: `tables` is empty or has a null.")
    no_table: bool = Field(description="Some path gets here with no table yet.")
    tables: list[list[str] | None] = Field(
        description="The tables that may be here, one per set of columns the check tells "
        "apart: each its columns, or null when they cannot be known before running (a file "
        "that is not there yet, a block after which they are not known). Empty and "
        "no_table false: no path gets here.")

    @classmethod
    def of(cls, knowledge: TableKnowledge) -> TableKnowledgeOut:
        """The response entry for what is known at one point."""
        columns = knowledge.columns
        return cls(
            columns=list(columns) if columns is not None else None,
            no_table=knowledge.no_table,
            tables=[list(table) if table is not None else None for table in knowledge.tables],
        )


class StateTablesOut(Out):
    """A state's table as far as known before running."""

    columns_in: TableKnowledgeOut = Field(description="On arrival in the state.")
    columns_out: TableKnowledgeOut = Field(
        description="On leaving it after its block succeeded (on_error states get "
        "columns_in instead).")


class DefinitionCheckOut(Out):
    """What saving a definition would find, with nothing saved."""

    valid: bool = Field(description="Whether POST (or PUT) would store it.")
    errors: list[ProblemOut] = Field(description="What POST would answer in its 422's "
                                     "errors[]; empty when valid.")
    warnings: list[ProblemOut] = Field(description="What POST would store in warnings "
                                       "(also listed when there are errors).")
    states: dict[str, StateTablesOut] | None = Field(
        description="Each state's table by state id, in the document's order; null when "
        "the tables were not traced: the states and actions have errors of their own, or "
        "no state is initial.")

    @classmethod
    def of(cls, checked: DefinitionCheck) -> DefinitionCheckOut:
        """The response for a check."""
        tables = checked.state_tables()
        return cls(
            valid=checked.valid,
            errors=[ProblemOut(**p.as_dict()) for p in checked.errors],
            warnings=[ProblemOut(**p.as_dict()) for p in checked.warnings],
            states=None if tables is None else {
                state_id: StateTablesOut(columns_in=TableKnowledgeOut.of(found.arriving),
                                         columns_out=TableKnowledgeOut.of(found.leaving))
                for state_id, found in tables.items()
            },
        )


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


class TableOut(Out):
    """The instance's current table, as far as known without reading it."""

    rows: int
    columns: list[str]
    seq: int = Field(description="The history event (block_started) whose run produced it.")


class BranchProgressOut(Out):
    """How far one branch of a running fork has got."""

    id: str
    name: str
    block: str
    status: Literal["running", "succeeded", "failed", "cancelled"]
    rows_done: int
    rows_total: int | None
    rows_sent: int | None


class ProgressOut(Out):
    """How far the running block has got."""

    block: str
    rows_done: int
    rows_total: int | None
    percent: float | None
    started_at: Timestamp
    rows_sent: int | None = Field(
        description="Rows whose request has left for the upstream API (the others wait "
        "for its rate budget or a free slot); null for a block that sends none.")
    branches: list[BranchProgressOut] | None = Field(
        None, description="A fork's branches, each with its own progress (the fork's "
        "rows are their sums); absent for other blocks.")


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
    inputs: dict[str, dict[str, Any]] = Field(
        description="The block parameters this run was started with, by state id.")
    created_at: Timestamp
    updated_at: Timestamp
    version: int = Field(description="Grows with every change; the ETag carries it.")
    table: TableOut | None = Field(description="The current table (rows, columns), if any.")
    error: dict[str, Any] | None = Field(description="Why the last block failed, if it did.")
    progress: ProgressOut | None = Field(
        None, description="While a block runs: its progress."
    )

    @classmethod
    def of(
        cls, instance: Instance, workflow: Workflow, progress: dict[str, Any] | None = None
    ) -> InstanceOut:
        """The response for an instance."""
        table = instance.table
        return cls(
            id=instance.id, definition_id=instance.definition_id,
            definition_version=instance.definition_version,
            current_state=instance.current_state, status=instance.status,
            is_final=workflow.states[instance.current_state].is_final,
            available_actions=[
                ActionOut.of(a) for a in available_actions(workflow, instance)
            ],
            context=instance.context, inputs=instance.inputs,
            created_at=instance.created_at,
            updated_at=instance.updated_at, version=instance.version,
            table=TableOut(rows=table.rows, columns=list(table.columns), seq=table.seq)
            if table else None,
            error=instance.error,
            progress=ProgressOut(**progress) if progress else None,
        )


class InstancePage(Out):
    """A page of instances."""

    items: list[InstanceOut]
    next_cursor: str | None


class UnavailableAction(ActionOut):
    """An action leaving the current state that cannot fire now, and why."""

    reason: str


class AvailableActions(Out):
    """What an instance can do now (and, when asked, what it cannot and why)."""

    instance_id: str
    current_state: str
    status: InstanceStatus
    is_final: bool
    actions: list[ActionOut]
    unavailable: list[UnavailableAction] | None = Field(
        None, description="With ?explain=true: the other actions leaving the state."
    )


class EventOut(Out):
    """One history event."""

    seq: int
    type: EventType
    action_id: str | None
    from_state: str | None
    to_state: str
    at: Timestamp
    actor: str | None
    data: dict[str, Any] | None = Field(
        description="Block events: block, params, rows_in, rows_out, columns, started_at, "
        "finished_at, error; automatic actions: trigger."
    )

    @classmethod
    def of(cls, event: Event) -> EventOut:
        """The response entry for an event."""
        data = event.data
        if data:
            data = {key: iso_ms(value) if key in ("started_at", "finished_at") else value
                    for key, value in data.items()}
        return cls(
            seq=event.seq, type=event.type, action_id=event.action_id,
            from_state=event.from_state, to_state=event.to_state, at=event.at,
            actor=event.actor, data=data,
        )


class HistoryPage(Out):
    """A page of an instance's history, oldest first."""

    instance_id: str
    items: list[EventOut]
    next_cursor: str | None


class ProgressEvent(ProgressOut):
    """The data of a ``progress`` event of an instance's event stream."""

    instance_id: str
    seq: int = Field(description="The history event that started the run (its "
                     "block_started).")


class StreamEnd(Out):
    """The data of the ``end`` event: the instance is completed, nothing more will come."""

    instance_id: str
    status: InstanceStatus
    current_state: str
    version: int


class Health(Out):
    """Liveness."""

    status: str


class WhoAmI(Out):
    """What the caller's token may do."""

    authenticated: bool = Field(description="A valid token was sent and checked.")
    auth_required: bool = Field(
        description="The server has tokens configured (false: the API is open to anyone).")
    token: str | None = Field(description="The token's name (the actor in history), or "
                              "null without tokens.")
    scopes: list[Scope] = Field(
        description="Every scope the caller has, the least first: a `run` token has "
        "`read` too; an open server grants them all.")
    may_set_actor: bool = Field(description="Whether X-Actor may refine the actor.")


class ApiHealth(Out):
    """Readiness: the database answers, and what it holds."""

    status: str
    database: str
    version: str
    uptime_seconds: float
    definitions: int
    instances: dict[str, int]


class PaidStepOut(Out):
    """A state whose block calls the upstream API."""

    state_id: str
    block: str
    rows: int | None = Field(description="Rows the block is given; null when its input "
                             "file cannot be read now, or a block before it makes a row "
                             "per person found (enrich_company with people 'rows').")
    exact: bool = Field(description="False: a block before it may drop rows, so rows and "
                        "requests are at most.")
    requests: int | None = Field(description="Upstream requests: one per row (one per "
                                 "batch of rows for find_email in bulk), and one poll per "
                                 "submission at least unless the API calls back.")


class EstimateOut(Out):
    """What a run will ask of the upstream API, before it starts."""

    definition_id: str
    version: int
    steps: list[PaidStepOut] = Field(description="The paid blocks, in the order they run.")
    requests: int | None
    per_minute: int = Field(description="The key's rate budget, shared by every run.")
    least_seconds: float | None = Field(
        description="The least time the rate budget allows for the requests (the API's own "
        "latency comes on top).")
    credits: float | None = Field(description="Credits, where a price is known; null: none "
                                  "is configured for these blocks.")

    @classmethod
    def of(cls, workflow: Workflow, estimate: RunEstimate) -> EstimateOut:
        """The response for an estimate."""
        return cls(
            definition_id=workflow.id, version=workflow.version,
            steps=[PaidStepOut(state_id=s.state_id, block=s.block, rows=s.rows,
                               exact=s.exact, requests=s.requests) for s in estimate.steps],
            requests=estimate.requests, per_minute=estimate.per_minute,
            least_seconds=estimate.least_seconds, credits=None,
        )


class TablePage(Out):
    """A page of an instance's table."""

    instance_id: str
    seq: int = Field(description="The run that produced this table.")
    total_rows: int
    columns: list[str]
    offset: int
    limit: int
    rows: list[dict[str, Any]] = Field(
        description="Objects keyed by column; missing values are null, lists and objects "
        "(such as enrich_references) are JSON arrays and objects.")


class BlockTypeOut(Out):
    """One block type of the catalog."""

    type: str
    description: str
    needs_table: bool
    composite: bool = Field(description="Whether the block runs other blocks (a fork's "
                            "branches), given in its params.")
    requires: str = Field(description="The columns the block needs in its input.")
    produces: str = Field(description="What the block's output is.")
    params_schema: dict[str, Any] = Field(description="JSON schema of the block's params.")


class BlockCatalogOut(Out):
    """Every block type a state may run."""

    items: list[BlockTypeOut]


class FileOut(Out):
    """A file in the files or outputs directory."""

    name: str
    size: int
    modified_at: Timestamp


class FileList(Out):
    """The files of a directory."""

    items: list[FileOut]


class CsvSummary(Out):
    """What a CSV holds: its columns, how many rows, and the first few."""

    name: str
    size: int
    columns: list[str]
    row_count: int | None = Field(description="All rows (uploads); null in a preview.")
    preview: list[dict[str, Any]]


class WebhookPayload(BaseModel):
    """What the enrichment API posts when a job finishes."""

    model_config = ConfigDict(extra="allow")

    task_id: str
    status: str
    task_type: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


class WebhookAck(Out):
    """The answer to the enrichment API's webhook."""

    accepted: bool


class TriggerOut(Out):
    """A trigger of a definition's latest version, with its next and last fire."""

    definition_id: str
    definition_version: int
    id: str
    type: TriggerType
    enabled: bool
    description: str
    cron: str | None = Field(description="schedule: its cron expression.")
    timezone: str | None = Field(description="schedule: the time zone it reads in.")
    input_file: str | None = Field(description="schedule: the file its runs read.")
    hook_url: str | None = Field(description="webhook: where to POST rows (with the token).")
    next_fire_at: Timestamp | None = Field(description="schedule: its next tick.")
    last_fired_at: Timestamp | None = Field(description="When it last started an instance.")
    last_instance_id: str | None = Field(description="The instance it started last.")
    token_issued_at: Timestamp | None = Field(description="webhook: when its token was made.")

    @classmethod
    def of(cls, info: TriggerInfo, hook_url: str | None) -> TriggerOut:
        """The listing entry of a trigger."""
        trigger = info.trigger
        schedule = trigger.type == "schedule"
        return cls(
            definition_id=info.definition_id, definition_version=info.definition_version,
            id=trigger.id, type=trigger.type, enabled=trigger.enabled,
            description=trigger.description, cron=trigger.cron,
            timezone=trigger.timezone if schedule else None, input_file=trigger.input_file,
            hook_url=None if schedule else hook_url, next_fire_at=info.next_fire_at,
            last_fired_at=info.last_fired_at, last_instance_id=info.last_instance_id,
            token_issued_at=info.token_issued_at,
        )


class TriggerList(Out):
    """Triggers, by definition, in declaration order."""

    items: list[TriggerOut]


class HookToken(Out):
    """A webhook trigger's new token: shown once."""

    definition_id: str
    trigger_id: str
    token: str = Field(description="Send it as Authorization: Bearer <token> or X-Hook-Token.")
    hook_url: str
