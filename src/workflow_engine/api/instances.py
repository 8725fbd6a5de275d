"""Routes for instances: start, read, list, fire actions, history."""

from __future__ import annotations

from flask import Blueprint, Response, request, url_for
from pydantic import Field

from ..core import Instance, InstanceStatus, Workflow, explain_actions
from ..core.definitions import Identifier
from . import service, streams
from .observability import stream_observer
from .pagination import decode_cursor, encode_cursor
from .requests import (
    ListQuery,
    QueryModel,
    actor,
    idempotency_key,
    if_match,
    json_body,
    last_event_id,
    query,
    validate_body,
)
from .responses import json_response
from .schemas import (
    ActionOut,
    AvailableActions,
    EventOut,
    HistoryPage,
    InstanceOut,
    InstancePage,
    StartInstance,
    UnavailableAction,
)
from .sse import event_stream_response

__all__ = ["blueprint", "instance_response"]

blueprint = Blueprint("instances", __name__, url_prefix="/api/instances")

MAX_WAIT_SECONDS = 60


class WaitQuery(QueryModel):
    """How long to wait for a started block to settle before answering."""

    wait: float = Field(0, ge=0, le=MAX_WAIT_SECONDS,
                        description="Seconds to wait for running blocks to settle.")


class CancelQuery(QueryModel):
    """What to cancel: the running block, or one branch of a running fork."""

    branch: Identifier | None = Field(
        None, description="Cancel only this branch of the running fork; the others go on, "
        "and the state is cancelled once they have ended (retry then runs only the "
        "branches that did not succeed).")


class ExplainQuery(QueryModel):
    """Whether to list the actions that cannot fire, with the reason."""

    explain: bool = False


class InstanceQuery(ListQuery):
    """Filters of the instance listing."""

    definition_id: Identifier | None = None
    state: Identifier | None = None
    status: InstanceStatus | None = None


class EventsQuery(QueryModel):
    """Where an event stream resumes, and a token for clients that cannot send headers."""

    after: str | None = Field(
        None, description="Resume after this event id, as Last-Event-ID does (which wins "
        "when both are sent): '<seq>' or '<seq>.<rows>'.")
    access_token: str | None = Field(
        None, description="The API token, for clients that cannot send an Authorization "
        "header (a browser's EventSource). It can end up in proxies' logs: give such "
        "clients a token with the read scope only.")


def instance_response(
    instance: Instance, workflow: Workflow, status: int | None = None, *, wait: float = 0
) -> Response:
    """The instance, after waiting up to ``wait`` s for its blocks to settle.

    Without an explicit status: 202 while a block still runs, else 200.
    """
    if wait and instance.status is InstanceStatus.RUNNING:
        service().wait_for_blocks(instance.id, wait)
        instance, workflow = service().get_instance(instance.id)
    if status is None:
        status = 202 if instance.status is InstanceStatus.RUNNING else 200
    progress = service().progress(instance)
    response = json_response(InstanceOut.of(instance, workflow, progress), status)
    response.headers["ETag"] = instance.etag
    return response


@blueprint.post("")
def start_instance() -> Response:
    """Start an instance. With a client-chosen ``id``, starting again is idempotent."""
    wait = query(WaitQuery).wait
    request_body = validate_body(StartInstance, json_body())
    instance, workflow, created = service().start_instance(
        request_body.definition_id, version=request_body.version, instance_id=request_body.id,
        context=request_body.context, inputs=request_body.inputs, actor=actor(),
    )
    response = instance_response(instance, workflow, 201 if created else 200, wait=wait)
    response.headers["Location"] = url_for("instances.get_instance", instance_id=instance.id)
    return response


@blueprint.get("")
def list_instances() -> Response:
    """Instances in start order, filtered by definition, state and status."""
    params = query(InstanceQuery)
    after = decode_cursor(params.cursor, "instances", int) if params.cursor else None
    found = service().list_instances(
        definition_id=params.definition_id, state=params.state,
        status=params.status.value if params.status else None,
        after_pk=after, limit=params.limit + 1,
    )
    items, more = found[: params.limit], len(found) > params.limit
    body = InstancePage(
        items=[InstanceOut.of(instance, workflow) for _, instance, workflow in items],
        next_cursor=encode_cursor("instances", items[-1][0]) if more else None,
    )
    return json_response(body)


@blueprint.get("/<instance_id>")
def get_instance(instance_id: str) -> Response:
    """An instance's current snapshot, with its ETag; with ``wait``, once its running
    block (and the automatic actions after it) settled, or ``wait`` seconds passed."""
    wait = query(WaitQuery).wait
    instance, workflow = service().get_instance(instance_id)
    return instance_response(instance, workflow, 200, wait=wait)


@blueprint.get("/<instance_id>/actions")
def list_available_actions(instance_id: str) -> Response:
    """The actions that can fire now, each with its target state; ``?explain=true`` adds
    the others with the reason each cannot fire."""
    explain = query(ExplainQuery).explain
    instance, workflow = service().get_instance(instance_id)
    explained = explain_actions(workflow, instance)
    body = AvailableActions(
        instance_id=instance.id, current_state=instance.current_state, status=instance.status,
        is_final=workflow.states[instance.current_state].is_final,
        actions=[ActionOut.of(action) for action, reason in explained if reason is None],
        unavailable=[
            UnavailableAction(**ActionOut.of(action).model_dump(), reason=reason)
            for action, reason in explained if reason is not None
        ] if explain else None,
    )
    response = json_response(body)
    response.headers["ETag"] = instance.etag
    return response


@blueprint.post("/<instance_id>/actions/<action_id>")
def fire_action(instance_id: str, action_id: str) -> Response:
    """Fire an action. ``If-Match`` guards against stale reads, ``Idempotency-Key`` retries.

    202 if the target state's block is still running when the answer is sent."""
    wait = query(WaitQuery).wait
    result = service().fire(
        instance_id, action_id, actor=actor(), if_match=if_match(),
        idempotency_key=idempotency_key(),
    )
    # A replay answers the first result as it was, never waited on.
    response = instance_response(result.instance, result.workflow,
                                  wait=0 if result.replayed else wait)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@blueprint.post("/<instance_id>/retry")
def retry_block(instance_id: str) -> Response:
    """Run the current state's failed or cancelled block again, from the same input."""
    wait = query(WaitQuery).wait
    instance, workflow = service().retry(instance_id, actor=actor())
    return instance_response(instance, workflow, wait=wait)


@blueprint.post("/<instance_id>/cancel")
def cancel_block(instance_id: str) -> Response:
    """Stop the running block; the instance stays in its state as cancelled. With
    ``branch``, stop that branch of the running fork: 202, the others go on."""
    branch = query(CancelQuery).branch
    instance, workflow = service().cancel(instance_id, branch=branch, actor=actor())
    return instance_response(instance, workflow, 200 if branch is None else 202)


@blueprint.get("/<instance_id>/history")
def get_history(instance_id: str) -> Response:
    """The instance's events, oldest first."""
    page = query(ListQuery)
    after = decode_cursor(page.cursor, "history", int) if page.cursor else 0
    events = service().history(instance_id, after_seq=after, limit=page.limit + 1)
    items, more = events[: page.limit], len(events) > page.limit
    body = HistoryPage(
        instance_id=instance_id, items=[EventOut.of(event) for event in items],
        next_cursor=encode_cursor("history", items[-1].seq) if more else None,
    )
    return json_response(body)


@blueprint.get("/<instance_id>/events")
def watch_events(instance_id: str) -> Response:
    """The instance's history events, its snapshot whenever it changes and its block's
    progress, as Server-Sent Events; resumes after ``Last-Event-ID``. 204 when the client
    already has everything (the instance is completed)."""
    after = last_event_id(query(EventsQuery).after)
    stream = streams().open(instance_id, after, disconnected=request.environ.get(
        "waitress.client_disconnected", lambda: False))
    if stream is None:
        nothing = Response(status=204)
        del nothing.headers["Content-Type"]
        return nothing
    return event_stream_response(stream, stream_observer())
