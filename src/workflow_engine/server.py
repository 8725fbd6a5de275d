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

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge

from . import startup
from .api import RUNNER
from .settings import Settings

__all__ = ["build_server", "configure", "listen", "main", "parse_args"]

log = logging.getLogger("workflow_engine")

# Request line and headers together; larger answers 431, as a proxy in front would.
MAX_HEADER_BYTES = 8192
# The endpoints that take bodies past MAX_BODY_BYTES, up to MAX_UPLOAD_BYTES: uploads, and
# the rows posted to a webhook trigger.
UPLOAD_PATH = "/api/files"
HOOK_PREFIX = "/api/hooks/"
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
        uploads = self.path == UPLOAD_PATH or self.path.startswith(HOOK_PREFIX)
        limit = self.upload_limit if uploads else self.body_limit
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


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, or the reason it cannot be.

    ``main`` binds before the application takes back any block run: a second process
    started on the same port at the same instant fails here and touches nothing. Port 0
    takes a free port, which then names the server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR lets a restarted server bind past the old one's TIME_WAIT
        # connections; on Linux it never lets two live sockets listen on one port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def build_server(app: Any, settings: Settings, *, threads: int,
                 sock: socket.socket | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> TcpWSGIServer:
    """A waitress server for ``app`` with the settings' limits, on the listening ``sock``
    or else a socket it binds to ``host:port`` (``run()`` serves until stopped). ``main``
    serves through it, and so can a benchmark that wants the real front in its own
    process."""
    if sock is None:
        sock = listen(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    server: TcpWSGIServer = _front(settings)(
        app, adj=_adjustments(settings, bound_host, bound_port, threads), _sock=sock,
        bind_socket=False, sockinfo=(sock.family, sock.type, sock.proto,
                                     sock.getsockname()))
    return server


def _raise_descriptor_limit(connections: int) -> None:
    """Allow enough open files for every connection plus the database and the logs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


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
        settings = startup.load_settings(updates)
        tokens = startup.read_tokens(settings)
        startup.refuse_open_api(tokens, args.host)
    except startup.StartRefused as exc:
        sys.exit(str(exc))
    startup.announce(settings, tokens)
    return settings


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until stopped."""
    args = parse_args(argv)
    settings = configure(args)
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        sys.exit(f"Cannot serve on {args.host}:{args.port}: {exc.strerror}")
    port = sock.getsockname()[1]
    if settings.worker_name is None and settings.task_engine == "threads":
        # The port names this server: a process restarted on it after a crash is the
        # same server and takes its block runs back at once, while two live processes
        # never share a name (they cannot share the port, which is bound by now).
        settings = settings.model_copy(
            update={"worker_name": f"{socket.gethostname()}:{port}"})
    # Looked up now, not at import: bench/noop_app.py serves its own app through this.
    from .app import create_app

    app = None
    try:
        app = create_app(settings)
        # Every answer is sent by waitress's one I/O thread, which must take the GIL from
        # busy request threads; at the default 5 ms turns, 32 clients' p99 was twice
        # gunicorn's.
        sys.setswitchinterval(SWITCH_INTERVAL)
        _raise_descriptor_limit(settings.http_max_connections)
        server = build_server(app, settings, sock=sock, threads=args.threads)
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        log.info("serving on http://%s:%d with waitress, %d threads, up to %d connections "
                 "(docs at /docs)", args.host, port, args.threads,
                 settings.http_max_connections)
        server.run()
    finally:
        sock.close()
        # Running blocks stop where they are and resume at the next start.
        runner = app.extensions.get(RUNNER) if app is not None else None
        if runner is not None:
            runner.close(wait=False)
        log.info("stopped")

if __name__ == "__main__":
    main()
