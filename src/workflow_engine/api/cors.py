"""Cross-origin requests: flask-cors's headers, worked out only for requests that carry an
``Origin`` header.

flask-cors's extension evaluates its options on every response, though a request without
``Origin`` is outside CORS (browsers send it on every cross-origin request and preflight).
Here its own option handling and header rules (``get_cors_options``, ``set_cors_headers``,
what its ``cross_origin`` decorator uses) answer requests with ``Origin``, preflights
included, exactly as before; the others only get ``Vary: Origin``, because their answer
differs from the one an ``Origin`` would get and a shared cache must not hand one for the
other.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_cors.core import get_cors_options, set_cors_headers

__all__ = ["install"]


def install(app: Flask, *, origins: list[str] | str, expose_headers: list[str],
            allow_headers: list[str]) -> None:
    """Add the CORS headers to every answer to a request with ``Origin``."""
    options = get_cors_options(app, {
        "origins": origins, "expose_headers": expose_headers, "allow_headers": allow_headers,
    })

    def add_cors_headers(response: Response) -> Response:
        if not request.environ.get("HTTP_ORIGIN"):
            if "Vary" in response.headers:
                response.vary.add("Origin")
            else:  # the usual case, without parsing and rebuilding a header set
                response.headers["Vary"] = "Origin"
            return response
        return set_cors_headers(response, options)

    app.after_request(add_cors_headers)
