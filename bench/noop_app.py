"""The ceiling of the stack: a no-op Flask app served exactly as the engine is served.

``python bench/noop_app.py --port 5001 --threads 8`` runs ``workflow_engine.server.main``
itself (the same waitress front, threads, limits and timeouts) with the application
factory swapped for :func:`create_app` below; ``bench/gunicorn_front.py --noop`` serves it
with the previous front. Whatever the engine's fire route costs beyond this app is the
engine's own cost (routing, validation, the transaction, serialisation, CORS); what this
app costs is Flask + the HTTP front + the loopback.
"""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask, Response, jsonify

__all__ = ["create_app", "main"]


def create_app(_settings: Any = None, **_ignored: Any) -> Flask:
    """A Flask app whose fire-shaped route does nothing but answer a small JSON."""
    app = Flask(__name__)

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    @app.post("/api/instances/<instance_id>/actions/<action_id>")
    def fire(instance_id: str, action_id: str) -> Response:
        return jsonify(id=instance_id, action=action_id, ok=True)

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve :func:`create_app` through the engine's own server entry point."""
    import workflow_engine.app
    from workflow_engine import server

    # server.main() looks ``create_app`` up in workflow_engine.app when it builds the app,
    # so replacing the module attribute here swaps the app and nothing else.
    workflow_engine.app.create_app = create_app  # type: ignore[assignment]
    server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
