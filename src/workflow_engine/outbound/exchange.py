"""One exchange of the http_request block with an HTTP API: a request sent, its redirects
followed, its answer read.

Redirects are followed by hand, up to ``MAX_REDIRECTS``: each hop connects through the
address guard (the client is built here, its connections made by
:class:`~.guard.GuardedBackend`), and a hop to another origin loses the headers that carry
secrets. An answer is read up to the size limit, then must be JSON. What went wrong is
sorted by who may repeat it: :class:`Retryable` (a 429, a 5xx, no connection: the caller
may try again), :class:`Answered` (a POST or PATCH took effect and what came after
failed: never again), or the row's :class:`~..errors.OutboundError`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpcore
import httpx

from ..errors import (
    AnswerNotJson,
    AnswerTooLarge,
    OutboundError,
    OutboundOutcomeUnknown,
    OutboundStatus,
    OutboundUnavailable,
    TooManyRedirects,
)
from .guard import AddressPolicy, GuardedBackend

__all__ = ["IDEMPOTENT", "MAX_REDIRECTS", "Answer", "Answered", "Exchange", "Outgoing",
           "Retryable"]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE"})
MAX_REDIRECTS = 5
# An answer's body must arrive whole within this many times the block's timeout.
BODY_TIMEOUTS = 4


@dataclass(frozen=True)
class Outgoing:
    """One request, rendered for one row.

    ``headers`` hold the secrets' values; ``identity`` is what names the request in its
    record (the same request with secrets by name, and the instance it belongs to)."""

    method: Method
    url: str
    headers: Mapping[str, str]
    secret_headers: frozenset[str]
    body: Any = None
    has_body: bool = False
    identity: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The request's record key: a digest of its identity."""
        text = json.dumps(self.identity, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(f"http|{text}".encode()).hexdigest()


@dataclass(frozen=True)
class Answer:
    """What came back: the status and the JSON body (None when empty); ``reused`` if it
    was stored by an earlier run."""

    status: int
    body: Any
    reused: bool = False


class Retryable(Exception):
    """An attempt worth repeating; ``final`` is the row error if none succeeds."""

    def __init__(self, final: OutboundError, retry_after: float | None = None) -> None:
        super().__init__(final.detail)
        self.final = final
        self.retry_after = retry_after


class Answered(Exception):
    """A non-idempotent request took effect, and what came after failed (``final``)."""

    def __init__(self, final: OutboundError) -> None:
        super().__init__(final.detail)
        self.final = final


class Exchange:
    """Sends one attempt of a request through the guarded client."""

    def __init__(self, policy: AddressPolicy, max_answer_bytes: int) -> None:
        self.max_answer_bytes = max_answer_bytes
        transport = httpx.HTTPTransport(retries=0)
        # The guard is where connections are made: every hop, every address. httpx builds
        # its httpcore pool without a way to pass a network backend, so it is set on the
        # pool; a pool that is not httpcore's own (a proxy) would pass the guard by.
        pool = transport._pool
        if type(pool) is not httpcore.ConnectionPool:
            raise RuntimeError("outbound HTTP needs httpcore's ConnectionPool for its guard")
        pool._network_backend = GuardedBackend(policy)
        # trust_env off: no proxy from the environment may carry requests past the guard.
        self.client = httpx.Client(transport=transport, trust_env=False, follow_redirects=False,
                                   limits=httpx.Limits(max_connections=64))

    def close(self) -> None:
        """Close the connections."""
        self.client.close()

    def attempt(self, out: Outgoing, timeout: float) -> Answer:
        """One attempt, redirects followed; :class:`Retryable` for what may be repeated.

        Once a non-idempotent request has been answered (a success, or a redirect), it
        took effect: whatever goes wrong after that is :class:`Answered`, never retried."""
        answered = [False]
        try:
            return self._hops(out, timeout, answered)
        except (Retryable, OutboundError) as exc:
            if out.method in IDEMPOTENT or not answered[0]:
                raise
            final = exc.final if isinstance(exc, Retryable) else exc
            if isinstance(final, OutboundOutcomeUnknown):
                raise final from None
            raise Answered(final) from None

    def _hops(self, out: Outgoing, timeout: float, answered: list[bool]) -> Answer:
        idempotent = out.method in IDEMPOTENT
        try:
            request = self.client.build_request(
                out.method, out.url, headers=dict(out.headers),
                json=out.body if out.has_body else None, timeout=httpx.Timeout(timeout))
        except UnicodeEncodeError:
            names = [name for name, value in out.headers.items() if not value.isascii()]
            raise OutboundError(
                f"{out.method} {_shown(httpx.URL(out.url))}: header "
                f"{', '.join(names) or 'value'} is not ASCII text, which a header cannot "
                "carry.") from None
        first = httpx.URL(out.url)
        for hop in range(MAX_REDIRECTS + 1):
            try:
                response = self.client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # No connection: nothing left, whatever the method.
                raise Retryable(OutboundUnavailable(
                    f"{out.method} {_shown(request.url)}: no connection ({_reason(exc)})."
                )) from exc
            except httpx.LocalProtocolError:
                # Its text quotes the header, which may hold a secret: not repeated.
                raise OutboundError(
                    f"{out.method} {_shown(request.url)}: cannot be sent (a header value "
                    "holds a line break or another character a header cannot carry)."
                ) from None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise OutboundError(f"{out.method} {_shown(request.url)}: cannot be sent "
                                    f"({_reason(exc)}).") from exc
            except httpx.TransportError as exc:
                lost = f"{out.method} {_shown(request.url)}: no answer ({_reason(exc)})"
                if idempotent:
                    raise Retryable(OutboundUnavailable(lost + ".")) from exc
                raise OutboundOutcomeUnknown(
                    lost + "; it may have taken effect, so it is not sent again.") from exc
            try:
                following = response.next_request
                if following is None:
                    return self._answer(out, request, response, answered, timeout)
                answered[0] = True
                if hop == MAX_REDIRECTS:
                    raise TooManyRedirects(
                        f"{out.method} {_shown(first)}: more than {MAX_REDIRECTS} redirects.")
                if following.url.scheme not in ("http", "https"):
                    raise OutboundError(f"{_shown(request.url)} redirects to a "
                                        f"{following.url.scheme}: URL, which is not followed.")
                if _origin(following.url) != _origin(first):
                    for name in out.secret_headers:  # secrets go to their own origin only
                        following.headers.pop(name, None)
                request = following
            finally:
                response.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, out: Outgoing, request: httpx.Request, response: httpx.Response,
                answered: list[bool], timeout: float) -> Answer:
        status, shown = response.status_code, f"{out.method} {_shown(request.url)}"
        said = f"{shown} answered {status} {response.reason_phrase}".rstrip()
        if status in (429, 503):
            raise Retryable(OutboundStatus(said + ", still after every retry.",
                                            http_status=status),
                             retry_after=_retry_after(response))
        if status >= 500:
            if out.method in IDEMPOTENT:
                raise Retryable(OutboundStatus(said + ", still after every retry.",
                                                http_status=status))
            raise OutboundOutcomeUnknown(
                said + ": it may have taken effect, so it is not sent again.")
        if not 200 <= status < 300:
            raise OutboundStatus(said + ".", http_status=status)
        answered[0] = True
        try:
            text = self._read(response, shown, timeout)
        except OutboundUnavailable as exc:
            raise Retryable(exc) from exc
        if not text.strip():
            return Answer(status, None)
        try:
            return Answer(status, json.loads(text))
        except ValueError:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise AnswerNotJson(f"{shown} answered {status} with {kind}, not JSON.") from None

    def _read(self, response: httpx.Response, shown: str, timeout: float) -> bytes:
        """The body, up to the size limit, arriving whole within ``BODY_TIMEOUTS`` times
        ``timeout`` (each wait for bytes is bounded by ``timeout`` itself, so a server
        trickling bytes cannot hold a row for longer)."""
        limit = self.max_answer_bytes
        deadline = time.monotonic() + BODY_TIMEOUTS * timeout
        declared = response.headers.get("content-length", "")
        too_large = AnswerTooLarge(f"{shown}: the answer is longer than {limit} bytes.",
                                   max_answer_bytes=limit)
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        read = bytearray()
        try:
            for chunk in response.iter_bytes():
                read += chunk
                if len(read) > limit:
                    raise too_large
                if time.monotonic() > deadline:
                    raise OutboundUnavailable(
                        f"{shown}: the answer did not arrive whole within "
                        f"{BODY_TIMEOUTS * timeout:g} s.")
        except httpx.TransportError as exc:
            raise OutboundUnavailable(f"{shown}: the answer broke off ({_reason(exc)})."
                                      ) from exc
        return bytes(read)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _shown(url: httpx.URL) -> str:
    """A URL as errors show it: without its query (which may hold a row's data) or any
    credentials."""
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), 300.0)
    except ValueError:
        return None
