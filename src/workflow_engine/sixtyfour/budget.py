"""One rate budget per API key, shared by every block of every instance in the process.

A token bucket refilled at the key's rate, holding one request, so the minute's budget is
spread out evenly and never spent in a burst. A 429's ``Retry-After`` pauses everyone.
(Which request goes next is the enricher's choice: due polls and submissions take turns.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from .config import RateLimit

__all__ = ["RateBudget"]

Kind = Literal["submit", "poll"]


class RateBudget:
    """Blocks each request until the key's rate allows it."""

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.rate = limit.per_second
        # No burst: a strict sliding minute on the server side then sees at most the limit.
        self.capacity = 1.0
        self._clock = clock
        self._tokens = 1.0
        self._stamp = clock()
        self._paused_until = 0.0
        self._waiting_submits = 0
        self._changed = threading.Condition()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self, kind: Kind = "submit") -> float:
        """Wait for a request's turn; how long it waited, in seconds."""
        began = self._clock()
        with self._changed:
            if kind == "submit":
                self._waiting_submits += 1
            try:
                while True:
                    now = self._clock()
                    self._refill(now)
                    if now < self._paused_until:
                        self._changed.wait(self._paused_until - now)
                        continue
                    if self._tokens >= 1:
                        self._tokens -= 1
                        return self._clock() - began
                    self._changed.wait((1 - self._tokens) / self.rate)
            finally:
                if kind == "submit":
                    self._waiting_submits -= 1
                    self._changed.notify_all()

    def pause(self, seconds: float) -> None:
        """Stop every request for ``seconds`` (the server said so with 429)."""
        with self._changed:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._tokens = 0.0
            self._changed.notify_all()
