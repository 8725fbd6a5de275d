"""An instance of a workflow: where it is now, as an immutable snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Instance", "InstanceStatus"]


class InstanceStatus(StrEnum):
    """Where an instance is in its life."""

    ACTIVE = "active"
    COMPLETED = "completed"


@dataclass(frozen=True)
class Instance:
    """A snapshot of one instance.

    ``version`` grows by one with every change; writers check it to detect that
    someone else changed the instance first (optimistic concurrency).
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

    @property
    def etag(self) -> str:
        """The entity tag of this snapshot, as sent in ``ETag`` and expected in ``If-Match``."""
        return f'"{self.version}"'
