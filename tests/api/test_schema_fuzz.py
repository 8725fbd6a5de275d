"""Schemathesis against our own OpenAPI document: generated requests for every operation
(a bounded, deterministic number each) must never get a 5xx, and every answer must be
what the document says: a documented status, content type and body."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import APPROVAL, make_settings
from workflow_engine import create_app
from workflow_engine.api import EXTENSION, RUNNER

pytestmark = pytest.mark.slow

# Schemathesis builds its test cases when the module is collected, from a live schema;
# the app it talks to (in-process, over WSGI) is made here and torn down after the module.
_ROOT = Path(tempfile.mkdtemp(prefix="fuzz-"))
# An instance's event stream lasts until its time is up: a short time keeps each call short.
_APP = create_app(make_settings(_ROOT, event_stream_max_seconds=0.2))
_CLIENT = _APP.test_client()
_CLIENT.post("/api/definitions", json=APPROVAL)
_CLIENT.post("/api/instances", json={"definition_id": "approval", "id": "i"})
schema = schemathesis.openapi.from_wsgi("/openapi.json", _APP)


@pytest.fixture(scope="module", autouse=True)
def _teardown_app() -> Iterator[None]:
    yield
    _APP.extensions[RUNNER].close()
    _APP.extensions[EXTENSION].store.dispose()
    shutil.rmtree(_ROOT, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_document(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance,
                                   content_type_conformance, response_schema_conformance])
