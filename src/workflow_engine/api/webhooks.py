"""Where the enrichment API reports finished jobs, when submissions carried a webhook."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app

from ..errors import UnknownWebhook
from . import block_service
from .requests import json_body
from .responses import json_response
from .schemas import WebhookAck

__all__ = ["blueprint"]

blueprint = Blueprint("webhooks", __name__, url_prefix="/api/webhooks")


@blueprint.post("/sixtyfour/<secret>")
def sixtyfour(secret: str) -> Response:
    """A finished job: ``{task_id, status, task_type, result | error}``.

    What can be verified is: the secret path segment (only the enrichment API was given
    it), and that the task is one a process on this database submitted and still waits on
    (this server, or another that takes the stored outcome). Anything else is refused and
    changes nothing; polling remains the fallback either way.
    """
    expected = current_app.config["WEBHOOK_SECRET"]
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        raise UnknownWebhook("No webhook is registered at this address.")
    taken = block_service().deliver_webhook(json_body())
    if taken is False:
        raise UnknownWebhook("No process on this database is waiting on that task.")
    # None: the task finished already (a poll got there first); nothing more to take.
    return json_response(WebhookAck(accepted=bool(taken)))
