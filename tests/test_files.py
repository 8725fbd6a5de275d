"""File areas: plain names only, and a read-only fallback searched after the area."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_engine.errors import InvalidPath
from workflow_engine.files import FileArea, FileNotFound


@pytest.fixture
def area(tmp_path: Path) -> FileArea:
    """Uploads over a samples directory holding ``sample.csv`` and ``both.csv``."""
    for directory, names in (("uploads", ["upload.csv", "both.csv"]),
                             ("samples", ["sample.csv", "both.csv"])):
        (tmp_path / directory).mkdir()
        for name in names:
            (tmp_path / directory / name).write_text(f"{directory}\n1\n")
    return FileArea(tmp_path / "uploads", "files",
                    fallback=FileArea(tmp_path / "samples", "samples"))


class TestFallback:
    def test_a_file_is_found_here_first_then_in_the_fallback(
        self, area: FileArea, tmp_path: Path
    ) -> None:
        assert area.existing("both.csv") == tmp_path / "uploads" / "both.csv"
        assert area.existing("sample.csv") == tmp_path / "samples" / "sample.csv"
        assert area.find("nope.csv") is None
        with pytest.raises(FileNotFound):
            area.existing("nope.csv")

    def test_names_are_listed_once(self, area: FileArea) -> None:
        assert area.names() == ["both.csv", "sample.csv", "upload.csv"]

    def test_writes_go_to_the_area_never_the_fallback(
        self, area: FileArea, tmp_path: Path
    ) -> None:
        assert area.path("sample.csv") == tmp_path / "uploads" / "sample.csv"

    def test_a_missing_fallback_directory_is_empty(self, tmp_path: Path) -> None:
        (tmp_path / "uploads").mkdir()
        area = FileArea(tmp_path / "uploads", fallback=FileArea(tmp_path / "absent"))
        assert (area.names(), area.find("x.csv")) == ([], None)

    @pytest.mark.parametrize("name", ["../samples/sample.csv", "..", "/etc/passwd"])
    def test_names_are_still_plain(self, area: FileArea, name: str) -> None:
        with pytest.raises(InvalidPath):
            area.existing(name)

    def test_a_link_in_the_fallback_leading_out_is_refused(
        self, area: FileArea, tmp_path: Path
    ) -> None:
        (tmp_path / "secret.csv").write_text("a\n1\n")
        (tmp_path / "samples" / "link.csv").symlink_to(tmp_path / "secret.csv")
        with pytest.raises(InvalidPath, match="outside the samples directory"):
            area.existing("link.csv")
