"""The browser UI: one page at ``/`` and its files under ``/ui/``, all served from this
package (no CDN, so it works offline). It is a client of the public API only.

The page is built without a build step: ES modules in the browser, with third-party
modules vendored from npm at the versions ``ui/package-lock.json`` pins
(``scripts/vendor-ui`` copies them; a test checks the copies against the lockfile).

Everything served here carries a strict Content-Security-Policy: scripts, styles, images
and connections from this origin only, nothing inline but the page's import map (allowed
by its hash), no plugins, no frames around the page.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources

from flask import Blueprint, Response, send_from_directory

__all__ = ["ASSET_PREFIX", "PAGE_PATH", "blueprint", "content_security_policy"]

PAGE_PATH = "/"
ASSET_PREFIX = "/ui/"
STATIC = resources.files(__name__) / "static"

blueprint = Blueprint("ui", __name__)

# The one inline script: an import map cannot be a file of its own in Chromium.
_IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


@cache
def content_security_policy() -> str:
    """The policy of the page and its files. Styles the page's scripts set through the
    DOM's ``style`` property (Preact's ``style=${{...}}``, SortableJS) are not inline
    styles to CSP, so ``style-src 'self'`` allows them; the favicon is a ``data:`` URL."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _IMPORT_MAP.findall(page)
    )
    return "; ".join((
        "default-src 'self'", f"script-src 'self' {hashes}".rstrip(), "style-src 'self'",
        "img-src 'self' data:", "connect-src 'self'", "object-src 'none'", "base-uri 'none'",
        "frame-ancestors 'none'", "form-action 'self'",
    ))


@blueprint.after_request
def protect(response: Response) -> Response:
    """Every answer of the UI (its page, its files, their 404s) carries the policy."""
    response.headers["Content-Security-Policy"] = content_security_policy()
    return response


@blueprint.get(PAGE_PATH)
def page() -> Response:
    """The single page; its views live after the ``#`` (``#/instances/<id>``)."""
    response = send_from_directory(str(STATIC), "index.html", max_age=0)
    # The page names its modules without a content hash: it is always revalidated.
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get(f"{ASSET_PREFIX}<path:filename>")
def asset(filename: str) -> Response:
    """The page's scripts, styles and vendored modules."""
    response = send_from_directory(str(STATIC), filename, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response
