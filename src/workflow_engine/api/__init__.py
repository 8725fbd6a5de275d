"""The REST API: thin Flask blueprints over the service layer."""

from __future__ import annotations

from flask import current_app

from ..service import WorkflowService

__all__ = ["EXTENSION", "service"]

EXTENSION = "workflow_engine"


def service() -> WorkflowService:
    """The service of the application handling the current request."""
    found: WorkflowService = current_app.extensions[EXTENSION]
    return found
