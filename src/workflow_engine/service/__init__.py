"""The service layer: one place that opens transactions, calls the core and stores results.

Routes call these methods and serialise what they return; nothing here knows about HTTP
beyond the errors it raises. The runner calls the same methods to settle block runs.
"""

from __future__ import annotations

from .base import Scheduler, now_ms
from .definitions import Definitions, Saved
from .instances import FireResult, Instances
from .runs import PendingRun, Runs, progress_view

__all__ = ["FireResult", "PendingRun", "Saved", "Scheduler", "WorkflowService", "now_ms",
           "progress_view"]


class WorkflowService(Definitions, Instances, Runs):
    """Definitions, instances, their histories and their block runs, over a store."""
