"""The OpenAPI 3.1 document, generated from the pydantic models the API validates with,
and the interactive docs (Swagger UI, served from the installed package, no CDN)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any, Literal

from flask import Blueprint, Response, jsonify, redirect, send_from_directory, url_for
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.wrappers import Response as BaseResponse

from .. import __version__
from ..core import DefinitionSpec
from ..storage import FILE_NAME_PATTERN
from .access import required_scope
from .data import DataQuery
from .definitions import SaveQuery, VersionQuery
from .files import PreviewQuery, UploadQuery
from .instances import CancelQuery, EventsQuery, ExplainQuery, InstanceQuery, WaitQuery
from .problems import PROBLEM_JSON
from .requests import ListQuery, QueryModel
from .schemas import (
    ApiHealth,
    AvailableActions,
    BlockCatalogOut,
    CsvSummary,
    DefinitionCheckOut,
    DefinitionOut,
    DefinitionPage,
    DefinitionVersions,
    EstimateOut,
    EstimateRun,
    FileList,
    Health,
    HistoryPage,
    HookToken,
    InstanceOut,
    InstancePage,
    ProblemDetail,
    ProgressEvent,
    StartInstance,
    StreamEnd,
    TablePage,
    TriggerList,
    WebhookAck,
    WebhookPayload,
    WhoAmI,
)

__all__ = ["blueprint", "openapi_document"]

blueprint = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"

# (method, path, summary, query model, body model (or a media type), {status: (model, or
# a media type, or None for no content; description)}, {status: error codes})
Operation = tuple[
    str, str, str, type[QueryModel] | None, type[BaseModel] | str | None,
    dict[int, tuple[type[BaseModel] | str | None, str]], dict[int, str],
]

_INSTANCE_ID = {"name": "instance_id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,64}$"}}
_DEFINITION_ID = {**_INSTANCE_ID, "name": "definition_id"}
_ACTION_ID = {**_INSTANCE_ID, "name": "action_id"}
_SEQ = {"name": "seq", "in": "path", "required": True, "schema": {"type": "integer"}}
_SECRET = {"name": "secret", "in": "path", "required": True, "schema": {"type": "string"}}
_TRIGGER_ID = {**_INSTANCE_ID, "name": "trigger_id"}
_NAME = {"name": "name", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": FILE_NAME_PATTERN}}

OPERATIONS: list[Operation] = [
    ("get", "/health", "Liveness", None, None, {200: (Health, "Alive")}, {}),
    ("get", "/metrics", "Prometheus metrics", None, None,
     {200: ("text/plain", "Prometheus text format")}, {}),
    ("get", "/api/health", "Readiness: database, counts, version, uptime", None, None,
     {200: (ApiHealth, "Ready")}, {503: "service_unavailable"}),
    ("get", "/api/whoami", "What the caller's token may do: its name and scopes", None, None,
     {200: (WhoAmI, "The token's name and scopes (every scope on a server without "
            "tokens)")}, {}),
    ("post", "/api/definitions", "Create a definition (version 1)", SaveQuery, DefinitionSpec,
     {201: (DefinitionOut, "Created"), 200: (DefinitionOut, "Identical content already stored")},
     {400: "malformed_json | invalid_parameter",
      409: "definition_exists | concurrent_modification", 413: "payload_too_large",
      415: "unsupported_media_type", 422: "definition_invalid"}),
    ("post", "/api/definitions/validate", "Check a definition as POST would, storing "
     "nothing: its errors, warnings and each state's columns", SaveQuery, DefinitionSpec,
     {200: (DefinitionCheckOut, "Checked, valid or not (valid says which)")},
     {400: "malformed_json | invalid_parameter", 413: "payload_too_large",
      415: "unsupported_media_type"}),
    ("post", "/api/definitions/{definition_id}/validate", "Check a definition as PUT would "
     "(the body may leave out the id), storing nothing", SaveQuery, DefinitionSpec,
     {200: (DefinitionCheckOut, "Checked, valid or not (valid says which)")},
     {400: "malformed_json | invalid_parameter", 413: "payload_too_large",
      415: "unsupported_media_type"}),
    ("get", "/api/definitions", "List definitions (latest versions)", ListQuery, None,
     {200: (DefinitionPage, "A page")}, {400: "invalid_parameter"}),
    ("get", "/api/definitions/{definition_id}", "Get a definition", VersionQuery, None,
     {200: (DefinitionOut, "The definition")},
     {400: "invalid_parameter", 404: "definition_not_found | definition_version_not_found"}),
    ("put", "/api/definitions/{definition_id}", "Create the next version", SaveQuery,
     DefinitionSpec,
     {201: (DefinitionOut, "New version"), 200: (DefinitionOut, "Same as the latest")},
     {400: "malformed_json | invalid_parameter", 409: "concurrent_modification",
      413: "payload_too_large", 415: "unsupported_media_type", 422: "definition_invalid"}),
    ("get", "/api/definitions/{definition_id}/versions", "List a definition's versions", None,
     None, {200: (DefinitionVersions, "Version numbers")}, {404: "definition_not_found"}),
    ("post", "/api/definitions/{definition_id}/estimate", "What a run will ask of the "
     "upstream API before it starts: requests, the least time the rate budget allows, "
     "credits", None, EstimateRun, {200: (EstimateOut, "The estimate")},
     {400: "malformed_json", 404: "definition_not_found | definition_version_not_found",
      415: "unsupported_media_type", 422: "validation_failed | inputs_invalid"}),
    ("get", "/api/definitions/{definition_id}/diagram", "Mermaid state diagram", VersionQuery,
     None, {200: ("text/plain", "stateDiagram-v2 text")},
     {400: "invalid_parameter", 404: "definition_not_found | definition_version_not_found"}),
    ("post", "/api/instances", "Start an instance", WaitQuery, StartInstance,
     {201: (InstanceOut, "Started (status running while its first block runs)"),
      200: (InstanceOut, "Already started by the same request")},
     {400: "malformed_json | invalid_header",
      404: "definition_not_found | definition_version_not_found",
      409: "instance_exists", 413: "payload_too_large", 415: "unsupported_media_type",
      422: "validation_failed | inputs_invalid"}),
    ("get", "/api/instances", "List instances", InstanceQuery, None,
     {200: (InstancePage, "A page")}, {400: "invalid_parameter"}),
    ("get", "/api/instances/{instance_id}", "Get an instance", WaitQuery, None,
     {200: (InstanceOut, "The instance, with an ETag")},
     {400: "invalid_parameter", 404: "instance_not_found"}),
    ("get", "/api/instances/{instance_id}/actions", "Actions that can fire now", ExplainQuery,
     None, {200: (AvailableActions, "The actions")},
     {400: "invalid_parameter", 404: "instance_not_found"}),
    ("post", "/api/instances/{instance_id}/actions/{action_id}", "Fire an action", WaitQuery,
     None,
     {200: (InstanceOut, "Fired (or replayed for a known Idempotency-Key)"),
      202: (InstanceOut, "Fired; the target state's block is running")},
     {400: "invalid_header | invalid_parameter", 404: "instance_not_found | action_not_found",
      409: "instance_final | instance_busy | action_disabled | action_not_available_from_state"
           " | target_state_disabled | condition_not_met | auto_transition_loop"
           " | concurrent_modification",
      412: "precondition_failed", 422: "idempotency_key_reused"}),
    ("post", "/api/instances/{instance_id}/retry", "Run a failed block again", WaitQuery, None,
     {200: (InstanceOut, "Settled within ?wait"), 202: (InstanceOut, "Running again")},
     {404: "instance_not_found", 409: "nothing_to_retry | concurrent_modification"}),
    ("post", "/api/instances/{instance_id}/cancel", "Cancel the running block, or one branch "
     "of a running fork", CancelQuery, None,
     {200: (InstanceOut, "Cancelled"),
      202: (InstanceOut, "The branch is stopping; the fork's other branches go on")},
     {400: "invalid_parameter", 404: "instance_not_found | branch_not_found",
      409: "not_running"}),
    ("get", "/api/instances/{instance_id}/data", "The instance's table", DataQuery, None,
     {200: (TablePage, "A page of rows (format=json); text/csv with format=csv")},
     {400: "invalid_parameter", 404: "instance_not_found | no_table"}),
    ("get", "/api/instances/{instance_id}/history/{seq}/data",
     "The table right after a history event", DataQuery, None,
     {200: (TablePage, "A page of rows (format=json); text/csv with format=csv")},
     {400: "invalid_parameter", 404: "instance_not_found | event_not_found | no_table"}),
    ("get", "/api/instances/{instance_id}/progress/data",
     "The running enrichment's table so far: its input, with the answers already in "
     "(another running block: its input; once no block runs, the current table)",
     DataQuery, None,
     {200: (TablePage, "A page of rows (format=json); text/csv with format=csv")},
     {400: "invalid_parameter", 404: "instance_not_found | no_table"}),
    ("post", "/api/webhooks/sixtyfour/{secret}", "Where the enrichment API reports finished "
     "jobs (webhook mode)", None, WebhookPayload,
     {200: (WebhookAck, "Taken")},
     {400: "malformed_json", 404: "unknown_webhook", 415: "unsupported_media_type"}),
    ("post", "/api/hooks/{definition_id}/{trigger_id}", "A webhook trigger: start an "
     "instance on the posted rows (text/csv, or application/json rows)", None, "rows",
     {201: (InstanceOut, "Started on the rows (status running while its first block runs)"),
      200: (InstanceOut, "Already started by a call with the same Idempotency-Key")},
     {400: "malformed_json | invalid_header", 401: "hook_unauthorized",
      409: "instance_exists", 413: "payload_too_large", 415: "unsupported_media_type",
      422: "csv_invalid | hook_rows_invalid"}),
    ("get", "/api/triggers", "Every definition's triggers: hook URLs, next and last fires",
     None, None, {200: (TriggerList, "The triggers of every definition's latest version")},
     {}),
    ("get", "/api/definitions/{definition_id}/triggers", "A definition's triggers", None,
     None, {200: (TriggerList, "The triggers of its latest version")},
     {404: "definition_not_found"}),
    ("post", "/api/definitions/{definition_id}/triggers/{trigger_id}/token",
     "Make a webhook trigger's token anew (shown once; the old one stops working)", None,
     None, {200: (HookToken, "The new token and the hook URL")},
     {404: "definition_not_found | trigger_not_found"}),
    ("get", "/api/blocks", "The block catalog", None, None,
     {200: (BlockCatalogOut, "Every block type")}, {}),
    ("get", "/api/files", "Input files", None, None, {200: (FileList, "The files")}, {}),
    ("post", "/api/files",
     "Upload a CSV (multipart field 'file'; at most MAX_CSV_COLUMNS columns)", UploadQuery,
     "multipart/form-data",
     {201: (CsvSummary, "Stored; its columns, row count and first rows")},
     {400: "invalid_path | invalid_parameter", 409: "file_exists",
      413: "payload_too_large", 422: "csv_invalid | validation_failed"}),
    ("get", "/api/files/{name}", "Download an input file", None, None,
     {200: ("text/csv", "The file")}, {400: "invalid_path", 404: "file_not_found"}),
    ("get", "/api/files/{name}/preview", "The first rows of an input file", PreviewQuery, None,
     {200: (CsvSummary, "Columns and first rows")},
     {400: "invalid_path | invalid_parameter", 404: "file_not_found", 422: "csv_invalid"}),
    ("get", "/api/outputs", "Files written by save_csv", None, None,
     {200: (FileList, "The files")}, {}),
    ("get", "/api/outputs/{name}", "Download an output file", None, None,
     {200: ("text/csv", "The file")}, {400: "invalid_path", 404: "file_not_found"}),
    ("get", "/api/instances/{instance_id}/history", "An instance's history", ListQuery, None,
     {200: (HistoryPage, "A page of events, oldest first")},
     {400: "invalid_parameter", 404: "instance_not_found"}),
    ("get", "/api/instances/{instance_id}/events",
     "Live events of an instance (Server-Sent Events)", EventsQuery, None,
     {200: ("text/event-stream", "The stream: history, instance, progress and end events"),
      204: (None, "Nothing more will come: the instance is completed and the client's "
            "Last-Event-ID is its last event")},
     {400: "invalid_event_id | invalid_parameter | invalid_request",
      404: "instance_not_found", 503: "too_many_streams | service_unavailable"}),
]

# What an operation's description says besides the scope it needs.
_DESCRIPTIONS = {
    "/api/whoami": (
        "Lets a client (the browser UI) show only what the token may do. Without tokens "
        "configured it answers `auth_required: false` and every scope; with tokens, a "
        "request without a valid one answers 401 like any other endpoint."
    ),
    "/api/instances/{instance_id}/events": (
        "A `text/event-stream` (Server-Sent Events) of the instance. Events: `history` "
        "(data: an EventOut, as GET .../history lists it; id: its seq), `instance` (data: "
        "an InstanceOut, as GET /api/instances/{id} answers it, sent at the start and "
        "whenever its version moves; id: `<version>.<rows>`), `progress` (data: a "
        "ProgressEvent, whenever the running block's progress moves; id: "
        "`<version>.<rows_done>`), `end` (data: a StreamEnd: the instance is completed, "
        "everything was sent, the stream ends). Comments: `: keep-alive` when nothing "
        "happened for a while. Reconnecting with `Last-Event-ID` (or `?after=`) resumes "
        "right after that event: no history event is missed or sent twice. A stream ends "
        "after EVENT_STREAM_MAX_SECONDS with a `retry:` field, and EventSource reconnects."
    ),
}
# Schemas that the document names without an operation answering them as JSON.
_EXTRA_MODELS: tuple[type[BaseModel], ...] = (ProgressEvent, StreamEnd)

_HEADERS = {
    "X-Actor": "Who is acting; recorded in history.",
    "Idempotency-Key": "A retry with the same key returns the first result and fires nothing.",
    "If-Match": "The ETag last read; a stale one answers 412.",
    "Last-Event-ID": "The id of the last event received: the stream resumes right after "
    "it (an EventSource sends it when it reconnects).",
    "X-Hook-Token": "The webhook trigger's token (or send Authorization: Bearer <token>).",
}
_HOOK_ROWS = {
    "text/csv": {"schema": {"type": "string", "description": "A CSV with a header row."}},
    "application/json": {"schema": {"oneOf": [
        {"type": "array", "items": {"type": "object"}},
        {"type": "object", "required": ["rows"], "additionalProperties": False,
         "properties": {"rows": {"type": "array", "items": {"type": "object"}}}},
    ], "description": "Rows: objects of text, numbers, booleans or null."}},
}


def _parameters(
    path: str, method: str, query_model: type[QueryModel] | None, defs: dict[str, Any]
) -> list[Any]:
    """The operation's parameters; schemas they refer to are added to ``defs``."""
    params: list[Any] = []
    for spec in (_DEFINITION_ID, _INSTANCE_ID, _ACTION_ID, _SEQ, _NAME, _SECRET, _TRIGGER_ID):
        if "{" + str(spec["name"]) + "}" in path:
            params.append(spec)
    if query_model is not None:
        schema = query_model.model_json_schema(ref_template=REF)
        defs.update(schema.get("$defs", {}))
        for name, prop in schema["properties"].items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            description = prop.pop("description", None)
            param = {"name": name, "in": "query", "required": False, "schema": prop}
            if description:
                param["description"] = description
            params.append(param)
    if method == "post" and path.startswith("/api/instances") and "{seq}" not in path:
        names = ["X-Actor"]
        if path.endswith("{action_id}"):
            names += ["Idempotency-Key", "If-Match"]
        params += [{"name": n, "in": "header", "required": False, "description": _HEADERS[n],
                    "schema": {"type": "string", "maxLength": 200}} for n in names]
    if path.startswith("/api/hooks/"):
        params += [{"name": n, "in": "header", "required": False, "description": _HEADERS[n],
                    "schema": {"type": "string", "maxLength": 200}}
                   for n in ("X-Hook-Token", "Idempotency-Key")]
    if path.endswith("/events"):
        params.append({"name": "Last-Event-ID", "in": "header", "required": False,
                       "description": _HEADERS["Last-Event-ID"],
                       "schema": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}})
    return params


@cache
def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    models: set[tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
        (ProblemDetail, "serialization"), *((model, "serialization") for model in _EXTRA_MODELS)
    }
    for _, _, _, _, body, responses, _ in OPERATIONS:
        if isinstance(body, type):
            models.add((body, "validation"))
        for model, _ in responses.values():
            if isinstance(model, type):
                models.add((model, "serialization"))
    keys, schemas = models_json_schema(sorted(models, key=lambda m: (m[0].__name__, m[1])),
                                       ref_template=REF, by_alias=False)

    components: dict[str, Any] = schemas.get("$defs", {})
    problem = {PROBLEM_JSON: {"schema": keys[(ProblemDetail, "serialization")]}}
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, query_model, body, responses, errors in OPERATIONS:
        operation: dict[str, Any] = {
            "summary": summary,
            "operationId": method + "_" + re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_"),
            "parameters": _parameters(path, method, query_model, components),
            "responses": {},
        }
        if isinstance(body, type):
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": keys[(body, "validation")]}},
            }
        elif body == "rows":
            operation["requestBody"] = {"required": True, "content": _HOOK_ROWS}
        elif body is not None:
            operation["requestBody"] = {"required": True, "content": {body: {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"},
                               "name": {"type": "string", "pattern": FILE_NAME_PATTERN}},
            }}}}
        for status, (model, description) in sorted(responses.items()):
            entry: dict[str, Any] = {"description": description}
            if isinstance(model, type):
                entry["content"] = {"application/json": {"schema": keys[(model, "serialization")]}}
            elif model is not None:
                entry["content"] = {model: {"schema": {"type": "string"}}}
            if model is InstanceOut:
                entry["headers"] = {"ETag": {"schema": {"type": "string"}}}
            operation["responses"][str(status)] = entry
        if path.startswith("/api/"):
            errors = {503: "service_unavailable", **errors}
        if path.startswith("/api/hooks/"):
            operation["security"] = [{"hook": []}]
            operation["description"] = (
                "Authenticated by the trigger's own token (shown when the definition is "
                "created, or made anew by POST .../triggers/{trigger_id}/token), not by an "
                "API token. A wrong or missing token, an unknown address and a disabled "
                "trigger all answer 401, and nothing is started or stored. The rows are "
                "stored as the input file hook-<instance id>-<body digest>.csv, read by the "
                "initial state's read_csv; the body may be as large as an upload "
                "(MAX_UPLOAD_BYTES). "
                "History records the start as `webhook:<trigger_id>`.")
        elif path == "/health" or path.startswith("/api/webhooks/"):
            operation["security"] = []
        else:
            scope = required_scope(method.upper(), path)
            operation["description"] = " ".join(filter(None, (
                _DESCRIPTIONS.get(path),
                f"Needs a token with scope `{scope}` when tokens are configured.")))
            errors = {**errors, 401: "unauthenticated", 403: "insufficient_scope"
                      + (" | actor_not_allowed" if method == "post" and path.startswith(
                          "/api/instances") else "")}
        for status, codes in sorted(errors.items()):
            operation["responses"][str(status)] = {
                "description": f"code: {codes}", "content": problem,
            }
        operation["responses"]["default"] = {"description": "Any other error", "content": problem}
        paths.setdefault(path, {})[method] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Workflow Engine",
            "version": __version__,
            "description": "A durable state-machine workflow engine. Errors are "
            "application/problem+json (RFC 9457) with a stable `code`. Request bodies also "
            "accept the camelCase spelling of fields (isInitial, fromStates, toState...).",
        },
        "paths": paths,
        # Tokens are optional: a server without them configured is open (on loopback).
        "security": [{}, {"bearer": []}],
        "components": {
            "schemas": components,
            "securitySchemes": {"hook": {
                "type": "http", "scheme": "bearer",
                "description": "A webhook trigger's token (or the X-Hook-Token header).",
            }, "bearer": {
                "type": "http", "scheme": "bearer",
                "description": "An API token (python -m workflow_engine.auth). Scopes: read "
                "(GET, and checking a definition), run (start, fire, retry, cancel, upload), "
                "admin (saving definitions).",
            }},
        },
    }


@blueprint.get("/openapi.json")
def get_openapi() -> Response:
    """The OpenAPI document."""
    return jsonify(openapi_document())


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Workflow Engine API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""


@blueprint.get("/docs")
def get_docs() -> Response:
    """Interactive documentation."""
    return Response(_DOCS_PAGE, mimetype="text/html")


@blueprint.get("/docs/")
@blueprint.get("/docs/index.html")
def redirect_to_docs() -> BaseResponse:
    """The spellings people type for the docs page lead to it (one address, one page)."""
    return redirect(url_for(".get_docs"), code=308)


@blueprint.get("/docs/static/<path:filename>")
def get_docs_asset(filename: str) -> Response:
    """Swagger UI's own files, from the installed ``swagger-ui-py`` package."""
    directory = resources.files("swagger_ui") / "static"
    return send_from_directory(str(directory), filename, max_age=86400)
