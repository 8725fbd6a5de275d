"""Routes for workflow definitions: create, version, check, read, list, draw."""

from __future__ import annotations

from flask import Blueprint, Response, url_for
from pydantic import Field

from ..core.diagram import mermaid
from . import block_service, service
from .pagination import decode_cursor, encode_cursor
from .requests import MAX_INT, ListQuery, QueryModel, json_body, query, validate_body
from .responses import json_response
from .schemas import (
    DefinitionCheckOut,
    DefinitionOut,
    DefinitionPage,
    DefinitionSummary,
    DefinitionVersions,
    EstimateOut,
    EstimateRun,
)

__all__ = ["blueprint"]

blueprint = Blueprint("definitions", __name__, url_prefix="/api/definitions")


class SaveQuery(QueryModel):
    """Query of POST and PUT, and of their checks."""

    strict: bool = Field(False, description="Report warnings as errors.")


class VersionQuery(QueryModel):
    """Query of reads that may ask for an older version."""

    version: int | None = Field(
        None, ge=1, le=MAX_INT, description="Defaults to the latest version."
    )


def _saved(outcome_workflow: DefinitionOut, created: bool) -> Response:
    response = json_response(outcome_workflow, 201 if created else 200)
    response.headers["Location"] = url_for(
        "definitions.get_definition", definition_id=outcome_workflow.id,
        version=outcome_workflow.version,
    )
    return response


@blueprint.post("")
def create_definition() -> Response:
    """Create a definition (version 1). Identical content again answers 200."""
    strict = query(SaveQuery).strict
    outcome = service().create_definition(json_body(), strict=strict)
    return _saved(DefinitionOut.of(outcome.workflow, outcome.tokens), outcome.created)


@blueprint.put("/<definition_id>")
def put_definition(definition_id: str) -> Response:
    """Create the next version of a definition (or version 1 of a new one)."""
    strict = query(SaveQuery).strict
    outcome = service().put_definition(definition_id, json_body(), strict=strict)
    return _saved(DefinitionOut.of(outcome.workflow, outcome.tokens), outcome.created)


@blueprint.post("/validate")
def check_definition() -> Response:
    """What POST would find in a definition, storing nothing: 200 whether valid or not."""
    strict = query(SaveQuery).strict
    checked = service().check_definition(json_body(), strict=strict)
    return json_response(DefinitionCheckOut.of(checked))


@blueprint.post("/<definition_id>/validate")
def check_version(definition_id: str) -> Response:
    """What PUT would find in a definition, storing nothing: 200 whether valid or not."""
    strict = query(SaveQuery).strict
    checked = service().check_definition(json_body(), strict=strict,
                                         definition_id=definition_id)
    return json_response(DefinitionCheckOut.of(checked))


@blueprint.post("/<definition_id>/estimate")
def estimate_run(definition_id: str) -> Response:
    """What a run would ask of the upstream API: requests, least time, credits."""
    body = validate_body(EstimateRun, json_body())
    workflow, estimate = block_service().estimate(definition_id, body.version, body.inputs)
    return json_response(EstimateOut.of(workflow, estimate))


@blueprint.get("")
def list_definitions() -> Response:
    """The latest version of each definition, by id."""
    page = query(ListQuery)
    after = decode_cursor(page.cursor, "definitions", str) if page.cursor else None
    found = service().list_definitions(after=after, limit=page.limit + 1)
    items, more = found[: page.limit], len(found) > page.limit
    body = DefinitionPage(
        items=[DefinitionSummary.of(workflow) for workflow in items],
        next_cursor=encode_cursor("definitions", items[-1].id) if more else None,
    )
    return json_response(body)


@blueprint.get("/<definition_id>")
def get_definition(definition_id: str) -> Response:
    """A definition: the latest version, or ``?version=N``."""
    version = query(VersionQuery).version
    workflow = service().get_definition(definition_id, version)
    return json_response(DefinitionOut.of(workflow))


@blueprint.get("/<definition_id>/versions")
def list_versions(definition_id: str) -> Response:
    """Every version number of a definition, oldest first."""
    versions = service().definition_versions(definition_id)
    return json_response(DefinitionVersions(id=definition_id, versions=versions))


@blueprint.get("/<definition_id>/diagram")
def get_diagram(definition_id: str) -> Response:
    """The definition as a Mermaid ``stateDiagram-v2``."""
    version = query(VersionQuery).version
    workflow = service().get_definition(definition_id, version)
    return Response(mermaid(workflow), mimetype="text/plain")
