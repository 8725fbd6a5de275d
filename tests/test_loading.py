"""Loading the shipped definitions directory at start."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import DEFINITIONS, BuildApp, approval, make_settings
from workflow_engine.api import EXTENSION
from workflow_engine.errors import ValidationFailed
from workflow_engine.settings import Settings

SettingsFor = Callable[[Path], Settings]


@pytest.fixture
def settings_for(tmp_path: Path, database_url: str) -> SettingsFor:
    """Settings over the test's database that load definitions from a directory."""
    return lambda directory: make_settings(tmp_path, database_url=database_url,
                                           definitions_dir=directory)


def test_shipped_definitions_load_and_are_valid_without_warnings(
    tmp_path: Path, settings_for: SettingsFor, build_app: BuildApp,
) -> None:
    """Every shipped definition loads; none carries a warning."""
    app = build_app(settings_for(DEFINITIONS))
    listed = app.test_client().get("/api/definitions").json["items"]
    assert {d["id"] for d in listed} == {
        json.loads(p.read_text())["id"] for p in DEFINITIONS.glob("*.json")}
    for item in listed:
        assert app.test_client().get(f"/api/definitions/{item['id']}").json["warnings"] == []
    app.extensions[EXTENSION].store.dispose()


def test_loading_again_is_idempotent_and_changes_make_versions(
    tmp_path: Path, settings_for: SettingsFor, build_app: BuildApp,
) -> None:
    """Same files: nothing new. A changed file: its next version."""
    directory = tmp_path / "defs"
    directory.mkdir()
    (directory / "a.json").write_text(json.dumps(approval()))
    first = build_app(settings_for(directory))
    first.extensions[EXTENSION].store.dispose()
    second = build_app(settings_for(directory))
    client = second.test_client()
    assert client.get("/api/definitions/approval/versions").json["versions"] == [1]
    second.extensions[EXTENSION].store.dispose()

    (directory / "a.json").write_text(json.dumps(approval(name="Renamed")))
    third = build_app(settings_for(directory))
    assert third.test_client().get("/api/definitions/approval").json["version"] == 2
    third.extensions[EXTENSION].store.dispose()


def test_loading_again_keeps_versions_made_through_the_api(
    tmp_path: Path, settings_for: SettingsFor, build_app: BuildApp,
) -> None:
    """A file already stored as some version stores nothing, even when the API made a newer
    one: a restart does not undo the API's edits."""
    directory = tmp_path / "defs"
    directory.mkdir()
    (directory / "a.json").write_text(json.dumps(approval()))
    first = build_app(settings_for(directory))
    first.test_client().put("/api/definitions/approval", json=approval(name="Edited"))
    first.extensions[EXTENSION].store.dispose()
    again = build_app(settings_for(directory))
    client = again.test_client()
    assert client.get("/api/definitions/approval/versions").json["versions"] == [1, 2]
    assert client.get("/api/definitions/approval").json["name"] == "Edited"
    again.extensions[EXTENSION].store.dispose()


def test_a_missing_directory_stops_the_start(
    tmp_path: Path, settings_for: SettingsFor, build_app: BuildApp,
) -> None:
    with pytest.raises(ValidationFailed, match="does not exist"):
        build_app(settings_for(tmp_path / "nowhere"))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "Cannot read definition file"),
        (json.dumps({"name": "No id", "states": []}), "needs a string 'id'"),
        (json.dumps(approval(states=[])), "states"),
    ],
)
def test_a_broken_file_stops_the_start_and_names_itself(
    tmp_path: Path, settings_for: SettingsFor, content: str, words: str, build_app: BuildApp,
) -> None:
    """A server does not start half-configured: the error names the file and the problem."""
    directory = tmp_path / "defs"
    directory.mkdir()
    (directory / "broken.json").write_text(content)
    with pytest.raises(ValidationFailed) as caught:
        build_app(settings_for(directory))
    assert "broken.json" in str(caught.value)
    assert words in str(caught.value)
