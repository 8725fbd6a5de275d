"""Serve the application with waitress: ``python run_server.py --port 5000``.

Why waitress. Its front is an event loop that reads every request, headers and body, into
a buffer and hands it to a thread of the application only once it is complete; answers go
back through the same loop. So an idle socket, a client that sends half a header or
trickles a body, or a slow reader costs a file descriptor, never a request thread, and a
body shorter than its ``Content-Length`` is never executed. Threaded servers that give a
connection to a thread as soon as it is accepted (gunicorn's ``gthread`` among them) are
stalled by as many silent sockets as they have threads. Connections past the limit wait
in the kernel's backlog; a connection that sends nothing for ``HTTP_IDLE_TIMEOUT`` seconds
is closed.

Any number of server processes may serve one database (on PostgreSQL, or SQLite on one
machine): everything they share (the rate budget, block runs and their progress,
enrichment claims) is kept in the database. Each process runs its blocks in its own
threads, or, with ``TASK_ENGINE=procrastinate``, leaves them to workers. Restarting a
process when it dies is the job of the process manager (systemd, a container's restart
policy).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import re
import resource
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy.engine import make_url
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge

from . import logs
from .api import RUNNER
from .auth import TokenRegistry
from .settings import Settings

__all__ = ["build_server", "configure", "main", "parse_args"]

log = logging.getLogger("workflow_engine")

# Request line and headers together; larger answers 431, as a proxy in front would.
MAX_HEADER_BYTES = 8192
# The one endpoint that takes bodies past MAX_BODY_BYTES, up to MAX_UPLOAD_BYTES.
UPLOAD_PATH = "/api/files"
# A refused body up to this size is read and dropped so that the client sees the answer.
DISCARD_BYTES = 4 * 1024 * 1024
# Room for a multipart envelope around the largest upload.
MULTIPART_SLACK_BYTES = 64 * 1024
# Seconds a thread holds the GIL before another may take it (Python's default: 0.005).
SWITCH_INTERVAL = 0.001
_OBS_FOLD = re.compile(rb"\r\n[ \t]")


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


_CODES = {413: "payload_too_large"}


class _ProblemErrorTask(ErrorTask):  # type: ignore[misc]
    """The server's own answer to a request it refuses before the application sees it (a
    header block too large, a malformed request line, a body over the limit), as
    problem+json like every other error of ours rather than waitress's plain text."""

    def execute(self) -> None:
        error = self.request.error
        status, reason = int(error.code), str(error.reason)
        code = _CODES.get(status) or re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")
        body = json.dumps({
            "type": f"urn:workflow-engine:problem:{code}", "title": reason, "status": status,
            "detail": str(error.body) or reason,
            "instance": getattr(self.request, "path", None) or "", "code": code,
        }).encode()
        self.status = f"{status} {reason}"
        self.response_headers.append(("Content-Type", "application/problem+json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _StrictParser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's parser, stricter: it refuses obsolete line folding (a header line that
    starts with a space or a tab, which waitress would join to the line before: RFC 9112
    lets a server refuse it, and a header that means one thing here and another to a proxy
    in front is worth a 400), refuses a ``Content-Length`` over the endpoint's limit before
    buffering a byte of the body, and notes when the request's first byte came."""

    body_limit: int = 0  # set by _front()
    upload_limit: int = 0

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.began = time.time()
        self.discarding: int | None = None

    def received(self, data: bytes) -> int:
        if self.discarding is None:
            consumed: int = super().received(data)
            return consumed
        # The body of a refused request is read and dropped, not buffered, so that the
        # client reads the 413 rather than a connection reset by unread bytes.
        taken = min(len(data), self.discarding)
        self.discarding -= taken
        if self.discarding == 0:
            self.completed = True
        return taken

    def parse_header(self, header_plus: bytes) -> None:
        if _OBS_FOLD.search(header_plus):
            raise ParsingError("A header line starts with a space or a tab (obsolete "
                               "line folding): send each header on one line.")
        super().parse_header(header_plus)
        limit = self.upload_limit if self.path == UPLOAD_PATH else self.body_limit
        if self.content_length > limit:
            self.error = RequestEntityTooLarge(
                f"The request body is {self.content_length} bytes; this endpoint takes at "
                f"most {limit}.")
            self.expect_continue = False
            if self.content_length <= DISCARD_BYTES:
                self.discarding = self.content_length
            else:  # not worth reading: answer now (the client may see a reset)
                self.completed = True


class _Channel(HTTPChannel):  # type: ignore[misc]
    parser_class = _StrictParser
    error_task_class = _ProblemErrorTask


class _Server(TcpWSGIServer):  # type: ignore[misc]
    channel_class = _Channel
    request_timeout: float = 0  # set by _front()

    def maintenance(self, now: float) -> None:
        """Close idle connections (waitress's rule) and those whose request has not
        arrived whole within the request timeout, however busily it trickles in."""
        super().maintenance(now)
        cutoff = now - self.request_timeout
        for channel in self.active_channels.values():
            pending = channel.request
            if pending is not None and not channel.requests and pending.began < cutoff:
                channel.will_close = True


def _front(settings: Settings) -> type[_Server]:
    """The server class with the settings' limits."""
    parser = type("Parser", (_StrictParser,), {
        "body_limit": settings.max_body_bytes,
        "upload_limit": settings.max_upload_bytes + MULTIPART_SLACK_BYTES})
    channel = type("Channel", (_Channel,), {"parser_class": parser})
    return type("Server", (_Server,), {
        "channel_class": channel, "request_timeout": settings.http_request_timeout})


def _adjustments(settings: Settings, host: str, port: int, threads: int) -> Adjustments:
    """waitress's limits, from the settings."""
    largest_body = max(settings.max_body_bytes, settings.max_upload_bytes)
    return Adjustments(
        host=host, port=port, threads=threads, ident="workflow-engine",
        connection_limit=settings.http_max_connections,
        channel_timeout=settings.http_idle_timeout,
        # Idle channels are looked for this often; a second keeps the timeout sharp.
        cleanup_interval=1,
        max_request_header_size=MAX_HEADER_BYTES,
        # Reading a refused request whole in one go means closing the connection does not
        # reset it before the client has read the answer.
        recv_bytes=64 * 1024,
        # Content-Length is checked per endpoint by the parser; this bounds chunked bodies.
        max_request_body_size=largest_body + MULTIPART_SLACK_BYTES,
        # poll(2), not select(2): select cannot watch descriptors numbered past 1024.
        asyncore_use_poll=True,
        # Keep reading a connection while its request runs, so that a client that hangs
        # up is seen at once (environ["waitress.client_disconnected"]): an event stream
        # then frees its thread within a poll, not at its next write.
        channel_request_lookahead=1,
    )


def build_server(app: Any, settings: Settings, *, host: str, port: int,
                 threads: int) -> TcpWSGIServer:
    """A waitress server for ``app`` with the settings' limits, listening on ``host:port``
    (``run()`` serves until stopped). ``main`` serves through it, and so can a benchmark
    that wants the real front in its own process."""
    server: TcpWSGIServer = _front(settings)(app, adj=_adjustments(settings, host, port,
                                                                    threads))
    return server


def _raise_descriptor_limit(connections: int) -> None:
    """Allow enough open files for every connection plus the database and the logs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def _check_port_free(host: str, port: int) -> None:
    """Refuse to start (before taking over any block run) on a port another serves."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            sys.exit(f"Cannot serve on {host}:{port}: {exc.strerror}")


def _stop(_signum: int, _frame: FrameType | None) -> None:
    # waitress's loop catches SystemExit: it stops accepting and lets the request
    # threads finish (up to 5 s) before returning.
    raise SystemExit(0)


def configure(args: argparse.Namespace) -> Settings:
    """The settings the command line and the environment give, checked, with logging set
    up and the start-up warnings said."""
    updates: dict[str, Any] = {}
    if args.db:
        updates["database_url"] = _database_url(args.db)
    if args.definitions:
        updates["definitions_dir"] = Path(args.definitions)
    if args.log_level:
        updates["log_level"] = args.log_level.upper()
    try:
        # The command line's values as init arguments: they win over the environment, and
        # the combination is validated as a whole.
        settings = Settings(**updates)
    except ValueError as exc:
        sys.exit(f"Cannot start the server: {exc}")
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
    # A URL's password never reaches the logs.
    log.info("database: %s", make_url(settings.database_url).render_as_string(
        hide_password=True))
    log.info("definitions: %s", settings.definitions_dir or "(none)")
    log.info("storage: %s", settings.storage_url or (
        f"local directories {settings.files_dir}, {settings.outputs_dir}, "
        f"{settings.snapshots_dir}"))
    if settings.task_engine == "procrastinate" and settings.storage_url is None:
        log.warning("TASK_ENGINE=procrastinate with local storage: workers on other "
                    "machines cannot read this machine's files; set STORAGE_URL")
    if not settings.sixtyfour_api_key:
        log.warning("SIXTYFOUR_API_KEY is not set: enrichment blocks use the built-in "
                    "Sixtyfour SANDBOX, which returns SIMULATED data")
    if not tokens.enabled:
        log.warning("no API tokens configured: the API is OPEN to anyone on this machine; "
                    "serving on loopback only")
    return settings


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until stopped."""
    args = parse_args(argv)
    settings = configure(args)
    _check_port_free(args.host, args.port)
    if settings.worker_name is None and settings.task_engine == "threads":
        # The port names this server: a process restarted on it after a crash is the
        # same server and takes its block runs back at once, while two live processes
        # never share a name (they cannot share the port).
        settings = settings.model_copy(
            update={"worker_name": f"{socket.gethostname()}:{args.port}"})
    # Looked up now, not at import: bench/noop_app.py serves its own app through this.
    from .app import create_app

    app = create_app(settings)
    # Every answer is sent by waitress's one I/O thread, which must take the GIL from busy
    # request threads; at the default 5 ms turns, 32 clients' p99 was twice gunicorn's.
    sys.setswitchinterval(SWITCH_INTERVAL)
    _raise_descriptor_limit(settings.http_max_connections)
    server = build_server(app, settings, host=args.host, port=args.port,
                          threads=args.threads)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("serving on http://%s:%d with waitress, %d threads, up to %d connections "
             "(docs at /docs)", args.host, args.port, args.threads,
             settings.http_max_connections)
    try:
        server.run()
    finally:
        # Running blocks stop where they are and resume at the next start.
        runner = app.extensions.get(RUNNER)
        if runner is not None:
            runner.close(wait=False)
        log.info("stopped")


if __name__ == "__main__":
    main()
