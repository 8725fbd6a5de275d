"""The schedule loop: a thread of each server process that fires due schedule triggers.

Every process may run one; the database's claim of each tick makes one of them start it
(see :meth:`~workflow_engine.service.triggers.Triggers.fire_schedules`). The loop wakes
at the next tick of any schedule, or after ``poll_seconds`` to see definitions saved
since (by this process or another), whichever comes first. Tests leave the thread out and
call :meth:`ScheduleLoop.tick` themselves, with the service's clock frozen.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from .service import ScheduleRound

__all__ = ["ScheduleLoop"]

log = logging.getLogger(__name__)


class _Fires(Protocol):
    def fire_schedules(self) -> ScheduleRound:
        """Start the due ticks' instances."""

    def clock(self) -> int:
        """Now, in milliseconds."""


class ScheduleLoop:
    """Fires the service's due schedules, in a thread once started."""

    def __init__(self, service: _Fires, *, poll_seconds: float) -> None:
        self.service = service
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> ScheduleRound:
        """One round: start every due tick's instance (those no process started yet)."""
        return self.service.fire_schedules()

    def start(self) -> None:
        """Run rounds in a daemon thread until :meth:`close`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="schedules", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.poll_seconds
            try:
                round_ = self.tick()
            except Exception:
                log.exception("the schedule loop's round failed; trying again")
            else:
                if round_.next_at is not None:
                    until_next = (round_.next_at - self.service.clock()) / 1000
                    # A millisecond late, so that the tick is due when the round runs.
                    wait = min(wait, max(until_next, 0.0) + 0.001)
            self._stop.wait(wait)

    def close(self, timeout: float = 10) -> None:
        """Stop the thread (a round under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
