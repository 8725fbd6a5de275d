"""Calls of the http_request block: one request per row, to any HTTP API.

:class:`HttpCalls` is built once per process from the settings. It holds the secrets, the
address guard, the one ``httpx.Client`` every call shares, the rate budgets (one per host,
kept in the database like the enrichment key's, so every process spends it together) and
the request records (shared with the enrichment jobs).

A call is sent under its host's budget; 429 and 5xx answers, timeouts and network errors
are retried with exponential backoff and jitter (tenacity), a 429's ``Retry-After``
pausing everyone who shares the host. Each attempt is an :class:`~.exchange.Exchange`
(the guard, redirects, the size limit, JSON).

A non-idempotent request (POST, PATCH) is sent at most once: its record is claimed and
committed before it leaves, and its answer stored when it comes; a later run reuses the
stored answer. Only what provably left nothing behind (no connection made, refused by the
guard, 429 or 503) is sent again. A request whose answer never came (a timeout, a dropped
connection, a 5xx, or the process stopped meanwhile) has an unknown outcome: it is not sent
again unless the block says ``on_unknown_outcome: resend``, and then by a later run.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from ..errors import (
    AddressRefused,
    AnswerNotJson,
    AnswerTooLarge,
    OutboundError,
    OutboundOutcomeUnknown,
    OutboundStatus,
    OutboundUnavailable,
    TooManyRedirects,
)
from ..sixtyfour.budget import SharedRateBudget
from ..sixtyfour.config import RateLimit
from ..store import Store
from ..store.budgets import RateBudgets
from ..store.upstream import UpstreamJobs
from .exchange import IDEMPOTENT, Answer, Answered, Exchange, Outgoing, Retryable
from .guard import AddressPolicy

__all__ = ["KIND", "CallCancelled", "HttpCalls"]

KIND = "http_request"
# Backoff between attempts: random up to base * 2**attempt, at most the cap (seconds).
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
LOST = ("The request was sent, but the run that sent it stopped before its answer was "
        "stored: it may have taken effect, so it is not sent again (on_unknown_outcome: "
        "resend sends it again).")


class CallCancelled(Exception):
    """The run was cancelled while the call waited (for its budget or a retry)."""


class HttpCalls:
    """Sends http_request's calls for the whole process."""

    def __init__(self, store: Store, *, secrets: Mapping[str, str] | None = None,
                 policy: AddressPolicy = AddressPolicy(),  # noqa: B008 - a frozen value
                 max_answer_bytes: int = 1024 * 1024,
                 wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.secrets: Mapping[str, str] = dict(secrets or {})
        self.policy = policy
        self.max_answer_bytes = max_answer_bytes
        self.budgets = RateBudgets(store)
        self.records = UpstreamJobs(store)
        self.owner = uuid.uuid4().hex
        self._wall_ms = wall_ms
        self.exchange = Exchange(policy, max_answer_bytes)

    def close(self) -> None:
        """Close the connections."""
        self.exchange.close()

    # -- a call ---------------------------------------------------------------------------

    def send(self, out: Outgoing, *, rate_per_minute: int, timeout: float, max_retries: int,
             cancel: threading.Event, on_unknown_outcome: str = "error") -> Answer:
        """The answer to ``out``, or the :class:`OutboundError` that stands for the row's
        failure; :class:`CallCancelled` if ``cancel`` was set while waiting."""
        def call() -> Answer:
            return self._retried(out, rate_per_minute=rate_per_minute, timeout=timeout,
                                 max_retries=max_retries, cancel=cancel)
        if out.method in IDEMPOTENT:
            return call()
        return self._once(out, call, timeout=timeout, max_retries=max_retries,
                          resend=on_unknown_outcome == "resend")

    def _once(self, out: Outgoing, call: Callable[[], Answer], *, timeout: float,
              max_retries: int, resend: bool) -> Answer:
        """Send a non-idempotent request at most once, its record claimed before it leaves."""
        key, now = out.key, self._wall_ms()
        record = self.records.get_many([key]).get(key)
        if record is not None and record.status == "completed":
            return _stored(record.result)
        if record is not None and record.status in ("sending", "unknown"):
            # One run at a time holds an instance's block: a record still "sending" was
            # left by a run that stopped with the request out.
            why = record.error if record.status == "unknown" and record.error else LOST
            if record.status == "sending":
                self.records.unknown(key, owner=record.owner or "", error=why, now=now)
            if not resend:
                raise OutboundOutcomeUnknown(why)
        lease_ms = int((max_retries + 1) * (3 * timeout + BACKOFF_CAP_SECONDS) * 1000)
        standing = self.records.claim(key, KIND, owner=self.owner, now=now,
                                      lease_ms=lease_ms, resend=resend)
        if standing is not None:
            raise OutboundOutcomeUnknown(
                f"The same request is being sent by another run ({standing.status}); it is "
                "not sent twice.")
        try:
            answer = call()
        except OutboundOutcomeUnknown as exc:
            self.records.unknown(key, owner=self.owner, error=exc.detail, now=self._wall_ms())
            raise
        except Answered as exc:
            # It was answered: it took effect, and a later run must not send it again.
            final = exc.final
            self.records.finished(key, result={"error": {"code": final.code,
                                                         "message": final.detail}},
                                  error=None, now=self._wall_ms())
            raise final from None
        except OutboundStatus as exc:  # refused (4xx): nothing done, a later run may try
            self.records.finished(key, result=None, error=exc.detail, now=self._wall_ms())
            raise
        except (OutboundError, CallCancelled):
            # Nothing left: an address refused, no connection made, a request that could
            # not be built, a cancel before it went.
            self.records.not_taken(key, self.owner)
            raise
        except BaseException as exc:  # whatever else stopped it may have come after it left
            self.records.unknown(key, owner=self.owner, now=self._wall_ms(), error=(
                f"Sending the request stopped on {type(exc).__name__}: it may have taken "
                "effect, so it is not sent again."))
            raise
        self.records.finished(key, result={"status": answer.status, "body": answer.body},
                              error=None, now=self._wall_ms())
        return answer

    def _retried(self, out: Outgoing, *, rate_per_minute: int, timeout: float,
                 max_retries: int, cancel: threading.Event) -> Answer:
        origin = httpx.URL(out.url)
        host = f"{origin.scheme}://{origin.host}:{origin.port or ''}"
        budget = SharedRateBudget(
            self.budgets, hashlib.sha256(f"http|{host}".encode()).hexdigest(),
            RateLimit(rate_per_minute), sleep=lambda seconds: _pause(cancel, seconds))
        backoff = wait_random_exponential(multiplier=BACKOFF_BASE_SECONDS,
                                          max=BACKOFF_CAP_SECONDS)

        def wait(state: RetryCallState) -> float:
            failed = state.outcome.exception() if state.outcome is not None else None
            if isinstance(failed, Retryable) and failed.retry_after is not None:
                budget.pause(failed.retry_after)  # the host asked everyone to wait
                return 0.0  # the budget's slot comes after the pause
            return float(backoff(state))

        def attempt() -> Answer:
            if cancel.is_set():
                raise CallCancelled
            budget.acquire()
            if cancel.is_set():
                raise CallCancelled
            return self.exchange.attempt(out, timeout)

        retrying = Retrying(stop=stop_after_attempt(max_retries + 1), wait=wait,
                            retry=retry_if_exception_type(Retryable),
                            sleep=lambda seconds: _pause(cancel, seconds),
                            reraise=True)
        try:
            return retrying(attempt)
        except Retryable as exc:
            raise exc.final from None

def _pause(cancel: threading.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if the run is cancelled meanwhile."""
    cancel.wait(seconds)


def _stored(result: dict[str, Any] | None) -> Answer:
    """An earlier run's answer to the same non-idempotent request."""
    result = result or {}
    error = result.get("error")
    if isinstance(error, dict):
        kind = {found.code: found for found in (
            AnswerNotJson, AnswerTooLarge, TooManyRedirects, AddressRefused, OutboundStatus,
            OutboundUnavailable)}.get(str(error.get("code")), OutboundError)
        raise kind(f"{error.get('message')} (answered to an earlier run; not sent again)")
    return Answer(int(result.get("status", 200)), result.get("body"), reused=True)


