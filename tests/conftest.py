"""Fixtures: a real application over a real SQLite file in a temporary directory."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from workflow_engine import create_app
from workflow_engine.api import EXTENSION, RUNNER
from workflow_engine.service import WorkflowService
from workflow_engine.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "definitions"

APPROVAL: dict[str, Any] = {
    "id": "approval",
    "name": "Approval",
    "states": [
        {"id": "draft", "name": "Draft", "is_initial": True},
        {"id": "review", "name": "Review"},
        {"id": "approved", "name": "Approved", "is_final": True},
        {"id": "rejected", "name": "Rejected", "is_final": True},
        {"id": "archived", "name": "Archived", "is_final": True, "enabled": False},
    ],
    "actions": [
        {"id": "submit", "name": "Submit", "from_states": ["draft"], "to_state": "review"},
        {"id": "approve", "name": "Approve", "from_states": ["review"], "to_state": "approved"},
        {"id": "reject", "name": "Reject", "from_states": ["review"], "to_state": "rejected"},
        {"id": "rework", "name": "Rework", "from_states": ["review"], "to_state": "draft"},
        {"id": "escalate", "name": "Escalate", "enabled": False,
         "from_states": ["review"], "to_state": "approved"},
        {"id": "archive", "name": "Archive", "from_states": ["draft"], "to_state": "archived"},
    ],
}


def approval(**changes: Any) -> dict[str, Any]:
    """A fresh copy of the test definition, with top-level fields replaced."""
    document = copy.deepcopy(APPROVAL)
    document.update(changes)
    return document


def make_settings(root: Path, **changes: Any) -> Settings:
    """Settings whose database, files, outputs and snapshots all live under ``root``, with
    no samples directory unless ``changes`` name one."""
    return Settings(**{
        "database_url": f"sqlite:///{root / 'workflow.db'}", "files_dir": root / "files",
        "outputs_dir": root / "outputs", "snapshots_dir": root / "snapshots",
        "samples_dir": None, **changes,
    })


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an app over a fresh SQLite file, without shipped definitions."""
    return make_settings(tmp_path)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The real application."""
    application = create_app(settings)
    yield application
    application.extensions[RUNNER].close()
    application.extensions[EXTENSION].store.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the real application."""
    return app.test_client()


@pytest.fixture
def service(app: Flask) -> WorkflowService:
    """The application's service layer."""
    found: WorkflowService = app.extensions[EXTENSION]
    return found


@pytest.fixture
def definition(client: FlaskClient) -> dict[str, Any]:
    """The test definition, stored."""
    response = client.post("/api/definitions", json=approval())
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


@pytest.fixture
def instance(client: FlaskClient, definition: dict[str, Any]) -> dict[str, Any]:
    """A started instance of the test definition."""
    response = client.post("/api/instances", json={"definition_id": "approval"})
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body
