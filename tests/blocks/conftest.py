"""Fixtures for blocks: a context over temporary files and outputs directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_engine.blocks import BlockContext
from workflow_engine.storage import LocalArea


@pytest.fixture
def context(tmp_path: Path) -> BlockContext:
    """A block context whose files and outputs are empty temporary directories."""
    (tmp_path / "files").mkdir()
    (tmp_path / "outputs").mkdir()
    return BlockContext(files=LocalArea(tmp_path / "files"),
                        outputs=LocalArea(tmp_path / "outputs"))
