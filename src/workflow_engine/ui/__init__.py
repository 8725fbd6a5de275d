"""The browser UI: one page at ``/`` and its files under ``/ui/``, all served from this
package (no CDN, so it works offline). It is a client of the public API only.

The page is built without a build step: ES modules in the browser, with third-party
modules vendored from npm at the versions ``ui/package-lock.json`` pins
(``scripts/vendor-ui`` copies them; a test checks the copies against the lockfile).
"""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response, send_from_directory

__all__ = ["ASSET_PREFIX", "PAGE_PATH", "blueprint"]

PAGE_PATH = "/"
ASSET_PREFIX = "/ui/"
STATIC = resources.files(__name__) / "static"

blueprint = Blueprint("ui", __name__)


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
