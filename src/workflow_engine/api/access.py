"""Who may call: the bearer token check in front of every endpoint but ``/health``."""

from __future__ import annotations

import re

from flask import Blueprint, Flask, Response, current_app, g, request

from ..auth import Scope, Token, TokenRegistry
from ..errors import Forbidden, InvalidRequest, Unauthenticated
from ..ui import ASSET_PREFIX, PAGE_PATH
from .responses import json_response
from .schemas import WhoAmI

__all__ = ["HOOK_PREFIX", "TOKENS", "blueprint", "current_token", "install", "required_scope"]

blueprint = Blueprint("access", __name__)

TOKENS = "workflow_engine.tokens"
# The UI's page and files are open: the page asks for a token itself.
OPEN_PATHS = frozenset({"/health", PAGE_PATH})
WEBHOOK_PREFIX = "/api/webhooks/sixtyfour/"
# A webhook trigger's caller presents the trigger's own token, checked by its route.
HOOK_PREFIX = "/api/hooks/"
# POSTs that change nothing: checking a definition stores nothing and shows nothing that
# reading cannot (the block catalog, the columns of the files), so reading is enough.
READ_ONLY_POSTS = re.compile(r"/api/definitions(?:(?:/[^/]+)?/validate|/[^/]+/estimate)")
# Endpoints that also take the token as ``?access_token=`` (RFC 6750, section 2.3): a
# browser's EventSource cannot send an Authorization header. Nowhere else, since a URL
# ends up in proxies' logs and browser histories.
QUERY_TOKEN_ENDPOINTS = frozenset({"instances.watch_events"})
QUERY_TOKEN = "access_token"


def required_scope(method: str, path: str) -> Scope | None:
    """The scope a request needs (None: anyone)."""
    if (path in OPEN_PATHS or method == "OPTIONS" or path.startswith(WEBHOOK_PREFIX)
            or path.startswith(HOOK_PREFIX) or path.startswith(ASSET_PREFIX)):
        # The webhook's caller is the enrichment API: its secret path is its credential.
        # A webhook trigger's caller has the trigger's token, not an API token.
        return None
    if method in ("GET", "HEAD") or (method == "POST" and READ_ONLY_POSTS.fullmatch(path)):
        return Scope.READ
    if path.startswith("/api/definitions"):
        return Scope.ADMIN
    return Scope.RUN


def _check() -> None:
    registry: TokenRegistry = current_app.extensions[TOKENS]
    g.token = None
    needed = required_scope(request.method, request.path)
    if needed is None or not registry.enabled:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if request.endpoint in QUERY_TOKEN_ENDPOINTS and QUERY_TOKEN in request.args:
        if header:
            raise InvalidRequest(f"Send the token one way: the Authorization header or "
                                 f"?{QUERY_TOKEN}=, not both.")
        scheme, presented = "bearer", request.args[QUERY_TOKEN]
    token = registry.authenticate(presented.strip()) if scheme.lower() == "bearer" else None
    if token is None:
        raise Unauthenticated(
            "Send a valid API token: Authorization: Bearer <token>."
            if header else "This endpoint needs an API token: Authorization: Bearer <token>."
        )
    if not token.allows(needed):
        raise Forbidden(
            f"Token '{token.name}' has scope {', '.join(sorted(token.scopes))}; "
            f"{request.method} {request.path} needs '{needed}'.", required_scope=needed.value,
        )
    g.token = token


def current_token() -> Token | None:
    """The token that authenticated this request, if tokens are configured."""
    token: Token | None = g.get("token")
    return token


def install(app: Flask, registry: TokenRegistry) -> None:
    """Check every request's token before it reaches a route."""
    app.extensions[TOKENS] = registry
    app.before_request(_check)


@blueprint.get("/api/whoami")
def whoami() -> Response:
    """What the caller's token may do. With tokens configured the check in front of every
    route has already refused a request without a valid one (401), so a page learns that
    a token is needed the way it learns it from any other endpoint."""
    registry: TokenRegistry = current_app.extensions[TOKENS]
    token = current_token()
    if not registry.enabled:
        body = WhoAmI(authenticated=False, auth_required=False, token=None,
                      scopes=list(Scope), may_set_actor=True)
    elif token is None:  # the check in front lets no such request through
        raise Unauthenticated("This endpoint needs an API token: Authorization: Bearer <token>.")
    else:
        body = WhoAmI(authenticated=True, auth_required=True, token=token.name,
                      scopes=token.granted(), may_set_actor=token.may_set_actor)
    response = json_response(body)
    # The answer depends on the Authorization header: no shared cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response
