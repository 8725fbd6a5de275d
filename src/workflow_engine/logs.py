"""Structured logs: one JSON object per line, for our messages and every library's.

structlog renders; the standard library's loggers (ours, waitress's, SQLAlchemy's) are
routed through the same renderer, so an operator greps one format.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

__all__ = ["OncePer", "configure", "request_log"]

# waitress warns of its task queue's depth at every request that finds no idle thread:
# under load that is every request, and a JSON line each (written under the GIL) cost
# the server about a fifth of its fires at 32 connections. One warning per interval
# says the same.
QUEUE_WARNING_SECONDS = 10.0

# The request log writes one JSON line per request straight to stderr: the standard
# library's handler machinery doubles what a request costs the server.
_request_log: Any = structlog.get_logger("workflow_engine.request")


def request_log() -> Any:
    """The logger of the one-line-per-request log."""
    return _request_log


class OncePer(logging.Filter):
    """Lets one record through per ``seconds``; the next one says how many it held back."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        super().__init__()
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._next_at = float("-inf")
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` goes out."""
        now = self._clock()
        with self._lock:
            if now < self._next_at:
                self._held += 1
                return False
            self._next_at = now + self.seconds
            held, self._held = self._held, 0
        if held:
            record.msg = f"{record.msg} ({held} more held back over {self.seconds:g} s)"
        return True


def configure(level: str = "INFO", *, json: bool = True) -> None:
    """Send every log record to stderr as JSON (or as readable text with ``json=False``)."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=shared,
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    queue = logging.getLogger("waitress.queue")
    if not any(isinstance(found, OncePer) for found in queue.filters):
        queue.addFilter(OncePer(QUEUE_WARNING_SECONDS))
    global _request_log
    _request_log = structlog.wrap_logger(
        structlog.WriteLogger(sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_name="workflow_engine.request",
    )
