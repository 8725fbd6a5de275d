"""The REST API: thin Flask blueprints over the service layer."""

from __future__ import annotations

from flask import current_app

from ..runner import Runner
from ..service import EventStreams, WorkflowService

__all__ = ["EXTENSION", "RUNNER", "SCHEDULES", "STREAMS", "runner", "service", "streams"]

EXTENSION = "workflow_engine"
RUNNER = "workflow_engine.runner"
STREAMS = "workflow_engine.streams"
SCHEDULES = "workflow_engine.schedules"


def service() -> WorkflowService:
    """The service of the application handling the current request."""
    found: WorkflowService = current_app.extensions[EXTENSION]
    return found


def runner() -> Runner:
    """The block runner of the application handling the current request."""
    found: Runner = current_app.extensions[RUNNER]
    return found


def streams() -> EventStreams:
    """The event streams of the application handling the current request."""
    found: EventStreams = current_app.extensions[STREAMS]
    return found
