"""What happened to an instance: append-only events."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Event", "EventType"]


class EventType(StrEnum):
    """Kinds of history events."""

    INSTANCE_STARTED = "instance_started"
    ACTION_FIRED = "action_fired"
    BLOCK_STARTED = "block_started"
    BLOCK_SUCCEEDED = "block_succeeded"
    BLOCK_FAILED = "block_failed"
    BLOCK_CANCELLED = "block_cancelled"


@dataclass(frozen=True)
class Event:
    """One entry of an instance's history.

    ``seq`` numbers the events of one instance from 1 without gaps; ``at`` is in
    milliseconds since the Unix epoch, UTC. ``data`` holds what a kind of event needs to
    say: a block's type, parameters, rows in and out, timing, error.
    """

    instance_id: str
    seq: int
    type: EventType
    from_state: str | None
    to_state: str
    at: int
    action_id: str | None = None
    actor: str | None = None
    data: dict[str, Any] | None = None
