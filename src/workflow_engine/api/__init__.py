"""The REST API: thin Flask blueprints over the service layer."""

from __future__ import annotations

from flask import current_app

from ..runner import Runner
from ..service import WorkflowService

__all__ = ["EXTENSION", "RUNNER", "runner", "service"]

EXTENSION = "workflow_engine"
RUNNER = "workflow_engine.runner"


def service() -> WorkflowService:
    """The service of the application handling the current request."""
    found: WorkflowService = current_app.extensions[EXTENSION]
    return found


def runner() -> Runner:
    """The block runner of the application handling the current request."""
    found: Runner = current_app.extensions[RUNNER]
    return found
