"""The Sixtyfour client: submit a job, ask how it is doing. Built on an injected
``httpx.Client`` (tests swap its transport or point it at the sandbox).

Every request waits for the shared budget (:mod:`.budget`). 429s (honouring
``Retry-After``) and 5xx are retried, polls also after timeouts and network errors, with
exponential backoff and full jitter. A submission is sent again only when it provably
never left (the connection failed) or the API said it was not taken (429, 5xx): one whose
answer was lost may have started a paid job, so it is reported, not resent; and one that
answered a task id is never sent again.

``submit`` tells its caller, through two callbacks, when each attempt is about to leave
(``sending``: the moment to record the intent durably) and when an attempt was provably
not taken (``not_taken``: nothing can have been paid for it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import (
    UpstreamAuthError,
    UpstreamMalformed,
    UpstreamOutcomeUnknown,
    UpstreamRejected,
    UpstreamUnavailable,
)
from ..metrics import Metrics
from .budget import Budget, Kind
from .config import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, ENDPOINTS, Retries

__all__ = ["JobStatus", "SixtyfourClient", "make_http"]

TERMINAL = frozenset({"completed", "failed", "cancelled"})
MAX_THROTTLED = 50
# Failures that prove a request never left: safe to send a submission again.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_AUTH = {401: "upstream_unauthorized", 402: "upstream_payment_required",
         403: "upstream_forbidden"}


def make_http(api_key: str, base_url: str = DEFAULT_BASE_URL,
              transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The one place the HTTP client is built."""
    return httpx.Client(
        base_url=base_url, headers={"x-api-key": api_key}, timeout=DEFAULT_TIMEOUT,
        transport=transport, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )


@dataclass(frozen=True)
class JobStatus:
    """A job as a poll saw it; ``status`` lower-cased."""

    status: str
    # A bulk job's list of per-subject results comes as ``{"results": [...]}``.
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the job will not change any more."""
        return self.status in TERMINAL


class SixtyfourClient:
    """Submits jobs and polls them, within the key's budget."""

    def __init__(
        self,
        http: httpx.Client,
        budget: Budget,
        *,
        retries: Retries = Retries(),  # noqa: B008 - a frozen value object
        metrics: Metrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.http = http
        self.budget = budget
        self.retries = retries
        self.metrics = metrics
        self._sleep = sleep
        self._jitter = jitter

    def submit(
        self,
        kind: str,
        body: dict[str, Any],
        *,
        may_send: Callable[[], None] | None = None,
        sending: Callable[[], None] | None = None,
        not_taken: Callable[[], None] | None = None,
    ) -> str:
        """Start a job; its task id. Raises an ``Upstream*`` error when it cannot, and
        :class:`UpstreamOutcomeUnknown` when the request left but its answer was lost.

        ``may_send()`` is called before each attempt waits for the budget (it raises to
        give the attempt up without spending a slot), ``sending()`` right before each
        attempt leaves (after the budget let it go), ``not_taken()`` after each attempt
        that provably started nothing (refused with an HTTP status, or a connection that
        never opened)."""
        response = self._send("submit", "POST", ENDPOINTS[kind], body, may_send=may_send,
                              sending=sending, not_taken=not_taken)
        data = self._json(response)
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise UpstreamMalformed(f"The submission answered no task id: {str(data)[:200]}")
        return task_id

    def status(self, task_id: str) -> JobStatus:
        """How a job is doing."""
        response = self._send("poll", "GET", f"/job-status/{task_id}", None)
        data = self._json(response)
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise UpstreamMalformed(f"A poll answered no status: {str(data)[:200]}")
        # An unknown status is treated as still running: the job exists and is paid for,
        # and a later poll will tell more.
        status = data["status"].lower()
        result = data.get("result")
        if isinstance(result, list):  # a bulk job's answer may be the bare list
            result = {"results": result}
        return JobStatus(status, result if isinstance(result, dict) else None,
                         str(data["error"]) if data.get("error") else None)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.retries.cap_seconds, self.retries.base_seconds * 2.0**attempt)
        return ceiling * self._jitter()

    def _send(
        self,
        kind: Kind,
        method: str,
        path: str,
        body: Any,
        *,
        may_send: Callable[[], None] | None = None,
        sending: Callable[[], None] | None = None,
        not_taken: Callable[[], None] | None = None,
    ) -> httpx.Response:
        label = "job-status" if kind == "poll" else path
        problem = "no attempt made"
        attempt = throttled = 0
        while attempt < self.retries.attempts:
            if may_send is not None:
                may_send()
            waited = self.budget.acquire(kind)
            if self.metrics is not None:
                self.metrics.rate_budget_wait.observe(waited)
            if sending is not None:
                sending()
            try:
                response = self.http.request(method, path, json=body)
            except httpx.TransportError as exc:  # timeouts and network errors
                self._count(label, type(exc).__name__)
                if kind == "submit" and not isinstance(exc, _NEVER_SENT):
                    # The request may have reached the API and started a paid job: sending
                    # it again could pay twice. Say so instead.
                    raise UpstreamOutcomeUnknown(
                        f"The submission's outcome is unknown ({type(exc).__name__}): it "
                        "may have started a paid job, so it is not sent again.",
                        outcome="unknown",
                    ) from exc
                if not_taken is not None:
                    not_taken()
                problem = f"{type(exc).__name__}"
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            self._count(label, str(response.status_code))
            if response.status_code >= 400 and not_taken is not None:
                not_taken()  # an answer that is not a task id: no job was started
            if response.status_code in _AUTH:
                raise UpstreamAuthError(
                    f"The enrichment API refused the key ({response.status_code}): "
                    f"{response.text[:200]}", upstream_status=response.status_code,
                    reason=_AUTH[response.status_code],
                )
            if response.status_code == 429:
                # Not a failure of this request: the key's minute is spent. It does not use
                # up an attempt (up to a bound), and everyone waits.
                problem = "429 Too Many Requests"
                throttled += 1
                if throttled > MAX_THROTTLED:
                    break
                told = self._retry_after(response)
                self.budget.pause(told if told is not None
                                  else min(60.0, 2.0 * 2.0 ** min(throttled, 6)))
                continue
            if response.status_code >= 500:
                problem = f"{response.status_code} {response.reason_phrase}"
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise UpstreamRejected(
                    f"The enrichment API rejected the request ({response.status_code}): "
                    f"{response.text[:300]}", upstream_status=response.status_code,
                )
            return response
        raise UpstreamUnavailable(
            f"The enrichment API did not answer {method} {path} after "
            f"{attempt + throttled} attempts (last: {problem})."
        )

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After", "")
        try:
            return max(0.0, float(value))
        except ValueError:
            return None

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise UpstreamMalformed(
                f"The enrichment API answered something that is not JSON: {response.text[:200]}"
            ) from None

    def _count(self, endpoint: str, status: str) -> None:
        if self.metrics is not None:
            self.metrics.upstream_requests.labels(endpoint, status).inc()
