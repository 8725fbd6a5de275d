"""Routes for triggers: the webhook triggers' URLs, the listing, and token rotation."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, url_for

from ..errors import PayloadTooLarge
from ..service import TriggerInfo
from ..settings import Settings
from . import service
from .instances import instance_response
from .requests import idempotency_key
from .responses import json_response
from .schemas import HookToken, TriggerList, TriggerOut

__all__ = ["blueprint"]

blueprint = Blueprint("triggers", __name__, url_prefix="/api")

HOOK_TOKEN_HEADER = "X-Hook-Token"


def _hook_url(definition_id: str, trigger_id: str) -> str:
    settings: Settings = current_app.config["WORKFLOW_SETTINGS"]
    path = url_for("triggers.call_hook", definition_id=definition_id, trigger_id=trigger_id)
    base = settings.public_url or request.host_url
    return base.rstrip("/") + path


def _listing(found: list[TriggerInfo]) -> Response:
    return json_response(TriggerList(items=[
        TriggerOut.of(info, _hook_url(info.definition_id, info.trigger.id)) for info in found
    ]))


def _presented_token() -> str | None:
    """The hook token: ``X-Hook-Token``, else ``Authorization: Bearer <token>`` (a client
    that sends its API token with every request names the hook's in the header)."""
    named = request.headers.get(HOOK_TOKEN_HEADER, "").strip()
    if named:
        return named
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@blueprint.post("/hooks/<definition_id>/<trigger_id>")
def call_hook(definition_id: str, trigger_id: str) -> Response:
    """Start an instance on the posted rows (text/csv, or JSON rows). 201 with the
    instance; 200 for a retry with the same Idempotency-Key."""
    settings: Settings = current_app.config["WORKFLOW_SETTINGS"]
    request.max_content_length = settings.max_upload_bytes
    body = request.get_data(cache=False)
    if request.content_length is None and len(body) >= settings.max_upload_bytes:
        # A chunked body is cut at the limit without a word: refuse rather than truncate.
        raise PayloadTooLarge("The request body is larger than the server accepts.")
    instance, workflow, created = service().start_from_hook(
        definition_id, trigger_id, token=_presented_token(), body=body,
        media_type=request.mimetype or None, idempotency_key=idempotency_key(),
    )
    response = instance_response(instance, workflow, 201 if created else 200)
    response.headers["Location"] = url_for("instances.get_instance", instance_id=instance.id)
    return response


@blueprint.get("/triggers")
def list_triggers() -> Response:
    """Every definition's triggers (latest versions), with next and last fires."""
    return _listing(service().list_triggers())


@blueprint.get("/definitions/<definition_id>/triggers")
def list_definition_triggers(definition_id: str) -> Response:
    """One definition's triggers (its latest version)."""
    return _listing(service().list_triggers(definition_id))


@blueprint.post("/definitions/<definition_id>/triggers/<trigger_id>/token")
def rotate_token(definition_id: str, trigger_id: str) -> Response:
    """A new token for a webhook trigger, shown once; the old one stops working."""
    token, _ = service().rotate_hook_token(definition_id, trigger_id)
    return json_response(HookToken(definition_id=definition_id, trigger_id=trigger_id,
                                   token=token, hook_url=_hook_url(definition_id, trigger_id)))
