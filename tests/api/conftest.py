"""Fixtures for pipelines over the real app: shipped sample data, and a block that takes
its time (to watch progress, cancel it, or fire at it while it runs)."""

from __future__ import annotations

import shutil
import time
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ROOT
from workflow_engine.api import RUNNER
from workflow_engine.blocks import BLOCKS, Block, BlockContext
from workflow_engine.blocks.base import BlockParams
from workflow_engine.settings import Settings


class SleepParams(BlockParams):
    """Parameters of the test block."""

    seconds: float = 5.0
    fail: bool = False


class Sleep(Block[SleepParams]):
    """Passes the table on after a while, reporting progress and honouring cancel."""

    kind = "sleep"
    description = "Waits, then passes the table on (tests only)."
    Params = SleepParams
    needs_table = False

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        steps = max(1, int(self.params.seconds / 0.02))
        for step in range(steps):
            context.check_cancelled()
            context.progress(step, steps)
            time.sleep(0.02)
        if self.params.fail:
            raise RuntimeError("asked to fail")
        return table if table is not None else pd.DataFrame({"n": ["1"]})


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app's settings, with the sample files (leads, companies) in its files
    directory."""
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    for sample in ("leads.csv", "companies.csv"):
        shutil.copy(ROOT / "data" / sample, settings.files_dir / sample)
    return settings


@pytest.fixture
def slow(app: Flask) -> type[Sleep]:
    """Make the test block available to definitions of this app."""
    catalog = app.extensions[RUNNER].catalog
    catalog.blocks = {**BLOCKS, Sleep.kind: Sleep}
    return Sleep


def post_definition(client: FlaskClient, document: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/definitions", json=document)
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def run(client: FlaskClient, definition_id: str, wait: float = 10, **body: Any) -> dict[str, Any]:
    """Start an instance and fire 'run', waiting for it to settle."""
    started = client.post("/api/instances", json={"definition_id": definition_id, **body})
    assert started.status_code == 201, started.json
    fired = client.post(f"/api/instances/{started.json['id']}/actions/run?wait={wait}")
    assert fired.status_code in (200, 202), fired.json
    result: dict[str, Any] = fired.json  # type: ignore[assignment]
    return result
