"""Fixtures: a real application over a real database, in a temporary directory.

Every test that takes ``database_url`` runs on a fresh SQLite file and on a fresh database
of a real PostgreSQL server that the session starts on a free port. Every test built on
``settings`` (so on ``app`` or ``client``) runs a third time, ``procrastinate``: on
PostgreSQL with the task queue, its blocks run by a queue worker in a thread of the test
process. ``--databases=sqlite`` (or any comma-separated choice) runs those only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from workflow_engine import create_app
from workflow_engine.api import EXTENSION, RUNNER
from workflow_engine.service import WorkflowService, now_ms
from workflow_engine.settings import Settings
from workflow_engine.store import Store, make_engine
from workflow_engine.testing import PostgresServer, QueueWorker

pytest_plugins = ["tests.object_store", "tests.http_api"]

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "definitions"
WORKER = "tests.queue_worker"

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


DATABASES = ("sqlite", "postgresql", "procrastinate")
# The variants that only the task engine tells apart.
QUEUED = "procrastinate"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--databases``: which databases the suite runs against."""
    parser.addoption("--databases", default=",".join(DATABASES),
                     help="comma-separated: sqlite, postgresql (default: both)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a database once per database asked for."""
    if "database" in metafunc.fixturenames:
        chosen = [name.strip() for name in metafunc.config.getoption("databases").split(",")]
        unknown = set(chosen) - set(DATABASES)
        if unknown:
            raise pytest.UsageError(f"--databases: unknown {sorted(unknown)}")
        if "settings" not in metafunc.fixturenames:
            chosen = [name for name in chosen if name != QUEUED]
        metafunc.parametrize("database", chosen, scope="session")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session, started on a free port."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def database_url(database: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty database of the kind the test runs on."""
    if database in ("postgresql", QUEUED):
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.create_database()
    return f"sqlite:///{tmp_path / 'workflow.db'}"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store over a fresh database of the kind the test runs on, schema created."""
    found = Store(make_engine(database_url))
    found.create_schema()
    yield found
    found.dispose()


def make_settings(root: Path, **changes: Any) -> Settings:
    """Settings whose files, outputs and snapshots all live under ``root`` (the database
    too, unless ``changes`` give a ``database_url``), with no samples directory unless
    ``changes`` name one, and no schedule loop thread (tests of schedules call its tick)."""
    return Settings(**{
        "database_url": f"sqlite:///{root / 'workflow.db'}", "files_dir": root / "files",
        "outputs_dir": root / "outputs", "snapshots_dir": root / "snapshots",
        "samples_dir": None, "schedules": False, **changes,
    })


QUEUE_SETTINGS: dict[str, Any] = {
    "task_engine": "procrastinate", "block_heartbeat_seconds": 0.2, "block_lease_seconds": 2,
}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, database: str) -> Settings:
    """Settings for an app over a fresh database, without shipped definitions."""
    return make_settings(tmp_path, database_url=database_url,
                         **(QUEUE_SETTINGS if database == QUEUED else {}))


def open_app(settings: Settings, *, clock: Callable[[], int] = now_ms) -> Flask:
    """``create_app``, and with a task queue, a queue worker for the app's runner."""
    application = create_app(settings, clock=clock)
    runner = application.extensions[RUNNER]
    if runner.queue is not None:
        application.extensions[WORKER] = QueueWorker(runner)
    return application


def close_app(application: Flask) -> None:
    """Stop an application's runner (and queue worker) and close its database
    connections."""
    worker = application.extensions.get(WORKER)
    if worker is not None:
        worker.stop()
    application.extensions[RUNNER].close()
    application.extensions[EXTENSION].store.dispose()


BuildApp = Callable[[Settings], Flask]


@pytest.fixture
def build_app() -> Iterator[BuildApp]:
    """``create_app`` for tests that need their own settings; every app it built is
    closed when the test ends (no connection is left to the garbage collector)."""
    built: list[Flask] = []

    def build(settings: Settings) -> Flask:
        application = open_app(settings)
        built.append(application)
        return application

    yield build
    for application in built:
        close_app(application)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The real application."""
    application = open_app(settings)
    yield application
    close_app(application)


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
