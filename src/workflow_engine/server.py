"""Serve the application with gunicorn: ``python run_server.py --port 5000``.

gunicorn, not Flask's development server: it supervises the worker (restarts it if it
dies, times out stuck requests, shuts down gracefully on SIGTERM). One worker process
with a pool of threads is the default because the engine keeps process-wide state that
must not be split across processes (the shared rate budget and the block runner); the
database serialises writers either way.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication

from . import logs
from .auth import TokenRegistry
from .settings import Settings

__all__ = ["main", "parse_args"]

log = logging.getLogger("workflow_engine")


def _database_url(value: str) -> str:
    """``--db`` takes a SQLAlchemy URL or a path to a SQLite file."""
    return value if "://" in value else f"sqlite:///{Path(value).expanduser().resolve()}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="Serve the workflow engine.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--db", help="SQLite file or SQLAlchemy URL (default $DATABASE_URL "
                        "or ./var/workflow.db)")
    parser.add_argument("--definitions", help="directory of JSON definitions to load at start "
                        "(default ./definitions if it exists)")
    parser.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING...")
    return parser.parse_args(argv)


def _write_problem(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's answer to a request it cannot parse (a bad header, a URI or headers too
    long), as problem+json like every other error of ours rather than its HTML page."""
    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "bad_request"
    body = json.dumps({
        "type": f"urn:workflow-engine:problem:{code}", "title": reason, "status": status,
        "detail": message or reason, "code": code,
    }).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n")
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


def _worker_exit(_server: Any, worker: Any) -> None:
    """On a graceful stop, ask running blocks to stop: they resume at the next start."""
    app = getattr(worker, "wsgi", None)
    runner = getattr(app, "extensions", {}).get("workflow_engine.runner")
    if runner is not None:
        runner.close(wait=False)


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        # gunicorn 25+ opens a control socket at one fixed path per user; two servers on
        # one machine (tests, benchmarks) would fight over it, and we do not use it.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        # gunicorn looks this up when it answers a request it could not parse.
        gunicorn_util.write_error = _write_problem
        # Built in the worker, after the fork: database connections must not cross it.
        from .app import create_app

        return create_app(self.settings)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until stopped."""
    args = parse_args(argv)
    updates: dict[str, Any] = {}
    if args.db:
        updates["database_url"] = _database_url(args.db)
    if args.definitions:
        updates["definitions_dir"] = Path(args.definitions)
    if args.log_level:
        updates["log_level"] = args.log_level.upper()
    settings = Settings().model_copy(update=updates)
    if settings.definitions_dir is None and Path("definitions").is_dir():
        settings = settings.model_copy(update={"definitions_dir": Path("definitions")})

    try:
        tokens = TokenRegistry.load(settings.api_tokens, settings.tokens_file)
    except (OSError, ValueError) as exc:
        sys.exit(f"Cannot read API tokens: {exc}")
    if not tokens.enabled and not _is_loopback(args.host):
        sys.exit(
            f"No API tokens are configured, so the API is open: refusing to serve on "
            f"{args.host}. Bind 127.0.0.1, or configure TOKENS_FILE or API_TOKENS "
            "(python -m workflow_engine.auth --help)."
        )

    logs.configure(settings.log_level)
    log.info("database: %s", settings.database_url)
    log.info("definitions: %s", settings.definitions_dir or "(none)")
    if not settings.sixtyfour_api_key:
        log.warning("SIXTYFOUR_API_KEY is not set: enrichment blocks use the built-in "
                    "Sixtyfour SANDBOX, which returns SIMULATED data")
    if not tokens.enabled:
        log.warning("no API tokens configured: the API is OPEN to anyone on this machine; "
                    "serving on loopback only")
    log.info("serving on http://%s:%d (docs at /docs)", args.host, args.port)
    _Server(settings, {
        "bind": f"{args.host}:{args.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": args.threads,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": None,
        "worker_exit": _worker_exit,
        "loglevel": settings.log_level.lower(),
    }).run()


if __name__ == "__main__":
    main()
