"""An HTTP API of the tests' own, served over real HTTP on the loopback, for http_request.

It answers JSON about companies, echoes what it was sent, and misbehaves on demand (text,
huge answers, redirects, error statuses, 503s before it recovers, a request held until the
test lets it go). Every request is recorded; tests wait on the record (a condition), never
on the clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

HUGE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Seen:
    """One request as the API received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body) if self.body else None


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Stay quiet."""


@dataclass
class HttpApi:
    """The running API: its URL, what it saw, and the switches tests pull."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _server: BaseWSGIServer | None = None

    def requests(self, path: str | None = None) -> list[Seen]:
        """What it received so far (at ``path``, or anywhere)."""
        with self._changed:
            return [s for s in self.seen if path is None or s.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 30) -> list[Seen]:
        """Block until ``count`` requests (at ``path``) arrived; ``timeout`` only bounds a
        test gone wrong."""
        with self._changed:
            arrived = self._changed.wait_for(
                lambda: len([s for s in self.seen if path is None or s.path == path]) >= count,
                timeout)
        assert arrived, f"{count} requests to {path or 'the API'} did not arrive"
        return self.requests(path)

    # -- the application -------------------------------------------------------------------

    _routes = Map([
        Rule("/companies/<name>", endpoint="company"),
        Rule("/echo", endpoint="echo"),
        Rule("/text", endpoint="text"),
        Rule("/huge", endpoint="huge"),
        Rule("/redirect", endpoint="redirect"),
        Rule("/status/<int:code>", endpoint="status"),
        Rule("/flaky/<int:failures>", endpoint="flaky"),
        Rule("/hold", endpoint="hold"),
        Rule("/trickle", endpoint="trickle"),
    ])

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        seen = Seen(request.method, request.path, dict(request.args),
                    {k.lower(): v for k, v in request.headers.items()}, request.get_data(),
                    time.monotonic())
        with self._changed:
            self.seen.append(seen)
            earlier = len([s for s in self.seen if s.path == seen.path]) - 1
            self._changed.notify_all()
        try:
            endpoint, values = self._routes.bind_to_environ(environ).match()
        except HTTPException as exc:  # no such route: its 404 (or 405)
            return exc(environ, start_response)
        response = getattr(self, f"_{endpoint}")(seen, earlier=earlier, **values)
        return response(environ, start_response)

    @staticmethod
    def _json(value: Any, status: int = 200) -> Response:
        return Response(json.dumps(value), status=status, mimetype="application/json")

    def _company(self, seen: Seen, name: str, earlier: int) -> Response:
        return self._json({"name": name, "employees": 10 * len(name),
                           "address": {"city": "Berlin"}, "tags": ["b2b", "saas"]})

    def _echo(self, seen: Seen, earlier: int) -> Response:
        return self._json({"method": seen.method, "path": seen.path, "query": seen.query,
                           "headers": seen.headers, "json": seen.json})

    def _text(self, seen: Seen, earlier: int) -> Response:
        return Response("plain words", mimetype="text/plain")

    def _huge(self, seen: Seen, earlier: int) -> Response:
        return self._json({"data": "x" * HUGE_BYTES})

    def _redirect(self, seen: Seen, earlier: int) -> Response:
        return Response("", status=302, headers={"Location": seen.query["to"]})

    def _status(self, seen: Seen, code: int, earlier: int) -> Response:
        return self._json({"error": "as asked"}, status=code)

    def _flaky(self, seen: Seen, failures: int, earlier: int) -> Response:
        if earlier < failures:
            return self._json({"error": "try again"}, status=503)
        return self._echo(seen, earlier)

    def _trickle(self, seen: Seen, earlier: int) -> Response:
        """A JSON answer sent a byte at a time, each after the last has been read or
        ``released`` waited on briefly (a slow server, never ending in time)."""
        def body() -> Any:
            yield b'{"data": "'
            while not self.released.wait(0.05):
                yield b"x"
            yield b'"}'
        return Response(body(), mimetype="application/json")

    def _hold(self, seen: Seen, earlier: int) -> Response:
        self.released.wait(60)
        return self._echo(seen, earlier)

    # -- serving -------------------------------------------------------------------------

    def start(self) -> HttpApi:
        """Serve on a free loopback port."""
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="test-http-api").start()
        return self

    def stop(self) -> None:
        """Stop serving (held requests are let go first)."""
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def http_api() -> Iterator[HttpApi]:
    """The tests' own HTTP API, on a free loopback port."""
    api = HttpApi().start()
    yield api
    api.stop()
