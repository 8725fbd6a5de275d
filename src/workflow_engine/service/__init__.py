"""The service layer: one place that opens transactions, calls the core and stores results.

Routes call these methods and serialise what they return; nothing here knows about HTTP
beyond the errors it raises. The runner calls the same methods to settle block runs.
"""

from __future__ import annotations

from .base import Scheduler, now_ms
from .blocks import Blocks
from .definitions import Definitions, Saved
from .files import CsvRead, Files
from .instances import FireResult, Instances
from .runs import PendingRun, progress_view
from .streams import EventStream, EventStreams, Position, StreamLimits, Watching
from .tables import Tables
from .triggers import ScheduleRound, TriggerInfo, Triggers

__all__ = ["Blocks", "CsvRead", "EventStream", "EventStreams", "Files", "FireResult",
           "PendingRun", "Position", "Saved", "ScheduleRound", "Scheduler", "StreamLimits",
           "Tables", "TriggerInfo", "WorkflowService", "now_ms", "progress_view"]


class WorkflowService(Definitions, Triggers, Instances, Watching):
    """Definitions, instances, their histories, their block runs, their triggers and what
    a stream of their events reads, over a store."""
