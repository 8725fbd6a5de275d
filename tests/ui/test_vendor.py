"""The UI's vendored modules are exactly what ui/package-lock.json pins."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

VENDOR = ROOT / "src" / "workflow_engine" / "ui" / "static" / "vendor"

pytestmark = pytest.mark.slow


def test_the_vendored_modules_are_those_of_the_lockfile(tmp_path: Path) -> None:
    """scripts/vendor-ui, run afresh from the npm registry, gives the committed files."""
    out = tmp_path / "vendor"
    subprocess.run([str(ROOT / "scripts" / "vendor-ui"), str(out)], check=True, timeout=300)
    fresh = {p.name: p.read_bytes() for p in out.iterdir()}
    committed = {p.name: p.read_bytes() for p in VENDOR.iterdir()}
    assert sorted(fresh) == sorted(committed)
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert changed == [], f"re-run scripts/vendor-ui and commit: {changed}"
