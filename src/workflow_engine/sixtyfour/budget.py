"""One rate budget per API key, shared by every block of every instance.

:class:`SharedRateBudget` (what the server uses) keeps the budget in the database, so
every server process and worker machine on that database spends one budget together;
:class:`RateBudget` keeps it in the process (for a client used alone). Both spread the
minute's budget evenly, never in a burst, and a 429's ``Retry-After`` pauses everyone who
shares the budget. (Which request goes next is the enricher's choice: due polls and
submissions take turns.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol

from ..store.budgets import RateBudgets
from .config import RateLimit

__all__ = ["Budget", "RateBudget", "SharedRateBudget"]

Kind = Literal["submit", "poll"]


class Budget(Protocol):
    """What the client asks of a rate budget."""

    def acquire(self, kind: Kind = "submit") -> float:
        """Wait for a request's turn; how long it waited, in seconds."""

    def pause(self, seconds: float) -> None:
        """Stop every request for ``seconds``."""


class SharedRateBudget:
    """A budget kept in the database: the requests of every process sharing ``key``
    leave at most at the key's rate together.

    ``key`` names the budget (a digest of the API's address and key, never the key).
    Slots are taken in the order processes ask for them, so no process starves another.
    Times are wall-clock milliseconds: the machines sharing a budget keep their clocks
    in step (NTP), as any cluster does.
    """

    def __init__(
        self, budgets: RateBudgets, key: str, limit: RateLimit, *,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.budgets = budgets
        self.key = key
        self.interval_ms = max(1, round(1000 / limit.per_second))
        self._wall_ms = wall_ms
        self._sleep = sleep

    def acquire(self, kind: Kind = "submit") -> float:
        """Reserve the budget's next slot and wait for it; how long that was, in seconds."""
        now = self._wall_ms()
        slot = self.budgets.reserve(self.key, interval_ms=self.interval_ms, now_ms=now)
        waited = max(0, slot - now) / 1000
        if waited:
            self._sleep(waited)
        return waited

    def pause(self, seconds: float) -> None:
        """No request of anyone sharing the budget for ``seconds``."""
        self.budgets.pause(self.key, until_ms=self._wall_ms() + round(seconds * 1000))


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
