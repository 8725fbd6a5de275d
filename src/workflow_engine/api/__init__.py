"""The REST API: thin Flask blueprints over the service layer."""

from __future__ import annotations

from flask import current_app

from ..service import Blocks, EventStreams, Files, Tables, WorkflowService

__all__ = ["BLOCKS", "EXTENSION", "FILES", "RUNNER", "SCHEDULES", "STREAMS", "TABLES",
           "block_service", "file_service", "service", "streams", "table_service"]

EXTENSION = "workflow_engine"
# The runner is kept for the server's shutdown and the tests; routes never call it.
RUNNER = "workflow_engine.runner"
STREAMS = "workflow_engine.streams"
SCHEDULES = "workflow_engine.schedules"
FILES = "workflow_engine.files"
TABLES = "workflow_engine.tables"
BLOCKS = "workflow_engine.blocks"

# The accessors of files and blocks are not named ``files`` and ``blocks``: importing the
# blueprint modules of those names would replace them on this package.


def service() -> WorkflowService:
    """The service of the application handling the current request."""
    found: WorkflowService = current_app.extensions[EXTENSION]
    return found


def streams() -> EventStreams:
    """The event streams of the application handling the current request."""
    found: EventStreams = current_app.extensions[STREAMS]
    return found


def file_service() -> Files:
    """The input files and outputs of the application handling the current request."""
    found: Files = current_app.extensions[FILES]
    return found


def table_service() -> Tables:
    """The instances' tables of the application handling the current request."""
    found: Tables = current_app.extensions[TABLES]
    return found


def block_service() -> Blocks:
    """The block catalog and enrichment of the application handling the current request."""
    found: Blocks = current_app.extensions[BLOCKS]
    return found
