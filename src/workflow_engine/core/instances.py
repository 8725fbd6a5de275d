"""An instance of a workflow: where it is now, as an immutable snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Instance", "InstanceStatus", "TableInfo"]


class InstanceStatus(StrEnum):
    """Where an instance is in its life."""

    ACTIVE = "active"
    RUNNING = "running"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


@dataclass(frozen=True)
class TableInfo:
    """What is known of the instance's current table without reading it.

    ``seq`` is the history event whose block produced it; its snapshot is stored under
    that number.
    """

    seq: int
    rows: int
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Instance:
    """A snapshot of one instance.

    ``version`` counts the instance's history events: every change appends events and
    moves the version on by as many, so the next event's seq is always ``version + 1``
    and writers can detect that someone else changed the instance first.
    """

    id: str
    definition_id: str
    definition_version: int
    current_state: str
    status: InstanceStatus
    version: int
    created_at: int
    updated_at: int
    context: dict[str, Any] = field(default_factory=dict)
    # Block parameters given at the start, by state id: they override the definition's.
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    table: TableInfo | None = None
    error: dict[str, Any] | None = None

    @property
    def etag(self) -> str:
        """The entity tag of this snapshot, as sent in ``ETag`` and expected in ``If-Match``."""
        return f'"{self.version}"'
