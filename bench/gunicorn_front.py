"""The previous HTTP front, kept for comparison: gunicorn, 1 worker, ``gthread``.

``python bench/gunicorn_front.py --port 5002 --threads 8 [--noop]`` serves the engine (or,
with ``--noop``, ``bench/noop_app.py``'s app) exactly as the server was served before it
moved to waitress: one worker process, a pool of ``--threads`` threads, keep-alive 5 s,
a 60 s request timeout, no access log. ``bench/fires.py`` runs it beside the real server
so that the two fronts are compared in the same run, on the same machine.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

sys.path.insert(0, str(Path(__file__).resolve().parent))

__all__ = ["main"]


class _Front(BaseApplication):  # type: ignore[misc]
    def __init__(self, build: Any, options: dict[str, Any]) -> None:
        self.build = build
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        # gunicorn 25+ opens a control socket at one fixed path per user; two servers on
        # one machine would fight over it.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        # Built in the worker, after the fork: database connections must not cross it.
        return self.build()


def main(argv: list[str]) -> None:
    """Serve the engine, or the no-op app, with the old gunicorn settings."""
    from workflow_engine import server

    noop = "--noop" in argv
    args = server.parse_args([arg for arg in argv if arg != "--noop"])
    settings = server.configure(args)
    if noop:
        from noop_app import create_app as build_noop

        def build() -> Any:
            return build_noop()
    else:
        from workflow_engine.app import create_app

        def build() -> Any:
            return create_app(settings)
    print(f"gunicorn front on http://{args.host}:{args.port}", flush=True)
    _Front(build, {
        "bind": f"{args.host}:{args.port}", "workers": 1, "worker_class": "gthread",
        "threads": args.threads, "timeout": 60, "graceful_timeout": 10, "keepalive": 5,
        "accesslog": None, "loglevel": settings.log_level.lower(),
    }).run()


if __name__ == "__main__":
    main(sys.argv[1:])
