"""Storage areas: the same behaviour on the local disk and in an object store (moto's
S3 server), plain names only, atomic writes, and a read-only fallback."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from tests.conftest import make_settings
from tests.object_store import ObjectStore
from workflow_engine.errors import FileNotFound, InvalidPath, NoTable
from workflow_engine.settings import Settings
from workflow_engine.snapshots import Snapshots
from workflow_engine.storage import Areas, FileArea, LocalArea, StoredFile, open_areas

BACKENDS = ("local", "object_store")
HOSTILE_NAMES = [
    "../x", "..", ".", "/etc/passwd", "a/b.csv", "a\\b.csv", "a\x00b.csv", "a\nb.csv",
    "a.csv\n", "\x1b[31m.csv", "tab\t.csv", ".hidden.csv", "", " lead.csv", "x" * 129,
    "a..b.csv", "C:\\x.csv",
]


def fail_while_writing(stored: StoredFile) -> None:
    """Start replacing ``stored`` and break off half-way."""
    with stored.writing() as out:
        out.write(b"partial")
        raise RuntimeError("broke")


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for each backend, with samples (``sample.csv``, ``both.csv``) beside."""
    samples = tmp_path / "samples"
    samples.mkdir()
    for name in ("sample.csv", "both.csv"):
        (samples / name).write_bytes(b"samples\n1\n")
    if request.param == "local":
        return make_settings(tmp_path / "local", samples_dir=samples)
    store: ObjectStore = request.getfixturevalue("object_store")
    bucket: str = request.getfixturevalue("bucket")
    return make_settings(tmp_path / "local", samples_dir=samples,
                         storage_url=f"s3://{bucket}/cluster", storage_options=store.options)


@pytest.fixture
def areas(settings: Settings) -> Areas:
    """The engine's areas under those settings."""
    return open_areas(settings)


@pytest.fixture
def area(areas: Areas) -> FileArea:
    """An area without a fallback (outputs)."""
    return areas.outputs


class TestFiles:
    def test_bytes_round_trip(self, area: FileArea) -> None:
        stored = area.file("a.csv")
        assert not stored.exists()
        stored.write(b"a,b\n1,2\n")
        assert stored.exists()
        assert stored.read_bytes() == b"a,b\n1,2\n"
        assert stored.size() == 8
        assert stored.info().modified_at > 0
        with stored.open() as stream:
            assert stream.read(2) == b"a,"

    def test_a_stream_is_copied_whole(self, area: FileArea) -> None:
        """Larger than one copied chunk, and written from a stream."""
        content = bytes(range(256)) * 9000
        area.file("big.bin").write(io.BytesIO(content))
        assert area.file("big.bin").read_bytes() == content
        with area.file("w.bin").writing() as out:
            out.write(content)
        assert area.file("w.bin").size() == len(content)

    def test_a_file_is_found_anew_by_another_area_object(self, settings: Settings) -> None:
        """Another process opening the same storage reads what this one wrote."""
        open_areas(settings).outputs.file("shared.csv").write(b"x\n1\n")
        assert open_areas(settings).outputs.existing("shared.csv").read_bytes() == b"x\n1\n"
        assert "shared.csv" in open_areas(settings).outputs.names()

    def test_delete(self, area: FileArea) -> None:
        area.file("d.csv").write(b"1")
        area.file("d.csv").delete()
        assert not area.file("d.csv").exists()
        assert area.names() == []


class TestAtomicWrites:
    def test_readers_see_the_old_file_until_the_new_one_is_whole(
        self, area: FileArea
    ) -> None:
        stored = area.file("o.csv")
        stored.write(b"old")
        with stored.writing() as out:
            out.write(b"new, half")
            assert stored.read_bytes() == b"old"
            out.write(b" and whole")
        assert stored.read_bytes() == b"new, half and whole"

    def test_a_write_that_fails_leaves_the_old_file_and_no_trace(
        self, area: FileArea
    ) -> None:
        stored = area.file("o.csv")
        stored.write(b"old")
        with pytest.raises(RuntimeError, match="broke"):
            fail_while_writing(stored)
        assert stored.read_bytes() == b"old"
        assert area.names() == ["o.csv"]

    def test_a_staged_file_is_read_back_before_it_is_published(
        self, area: FileArea
    ) -> None:
        stored = area.file("s.csv")
        with stored.staged() as staged:
            staged.write(b"checked first")
            with staged.open() as stream:
                assert stream.read() == b"checked first"
            assert not stored.exists()
            staged.publish()
        assert stored.read_bytes() == b"checked first"
        with stored.staged() as staged:
            staged.write(b"refused")
        assert stored.read_bytes() == b"checked first"


class TestListing:
    def test_names_are_sorted_with_sizes(self, area: FileArea) -> None:
        for name, content in (("b.csv", b"12"), ("a.csv", b"1"), ("c d.csv", b"123")):
            area.file(name).write(content)
        assert [(info.name, info.size) for info in area.listing()] == [
            ("a.csv", 1), ("b.csv", 2), ("c d.csv", 3)]

    def test_sub_directories_are_not_files(self, area: FileArea) -> None:
        area.directory("inst-1").file("0000000001.parquet").write(b"x")
        area.file("top.csv").write(b"1")
        assert area.names() == ["top.csv"]
        assert area.directory("inst-1").names() == ["0000000001.parquet"]
        assert not area.file("inst-1").exists()

    def test_an_empty_area(self, area: FileArea) -> None:
        assert area.listing() == []
        assert area.directory("never-written").names() == []


class TestMissingFiles:
    @pytest.mark.parametrize("read", ["open", "read_bytes", "info", "size", "delete"])
    def test_reading_a_missing_file_says_so(self, area: FileArea, read: str) -> None:
        with pytest.raises(FileNotFound, match=r"No file named 'nope\.csv' in outputs"):
            getattr(area.file("nope.csv"), read)()

    def test_existing_and_find(self, area: FileArea) -> None:
        assert area.find("nope.csv") is None
        with pytest.raises(FileNotFound):
            area.existing("nope.csv")


class TestHostileNames:
    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    def test_are_refused_before_the_backend_sees_them(
        self, areas: Areas, name: str
    ) -> None:
        for area in (areas.files, areas.outputs, areas.snapshots):
            with pytest.raises(InvalidPath):
                area.file(name)
            with pytest.raises(InvalidPath):
                area.existing(name)

    @pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", "a\x00", "", "x" * 65])
    def test_sub_directory_names_too(self, area: FileArea, name: str) -> None:
        with pytest.raises(InvalidPath):
            area.directory(name)

    def test_a_non_string_name(self, area: FileArea) -> None:
        with pytest.raises(InvalidPath):
            area.file(None)  # type: ignore[arg-type]


class TestFallback:
    def test_a_file_is_found_here_first_then_in_the_samples(self, areas: Areas) -> None:
        files = areas.files
        files.file("both.csv").write(b"uploads\n1\n")
        files.file("upload.csv").write(b"uploads\n1\n")
        assert files.existing("both.csv").read_bytes() == b"uploads\n1\n"
        assert files.existing("sample.csv").read_bytes() == b"samples\n1\n"
        assert files.names() == ["both.csv", "sample.csv", "upload.csv"]

    def test_writes_go_to_the_area_never_the_samples(self, areas: Areas) -> None:
        areas.files.file("sample.csv").write(b"mine\n1\n")
        assert areas.files.existing("sample.csv").read_bytes() == b"mine\n1\n"
        assert areas.files.fallback is not None
        assert areas.files.fallback.existing("sample.csv").read_bytes() == b"samples\n1\n"

    def test_a_missing_samples_directory_is_empty(self, tmp_path: Path) -> None:
        area = LocalArea(tmp_path / "uploads", fallback=LocalArea(tmp_path / "absent"))
        assert (area.names(), area.find("x.csv")) == ([], None)


class TestSnapshots:
    TABLE = pd.DataFrame({"name": ["Ann", "Bo"], "refs": [[1, {"k": "v"}], None]})

    def test_round_trip(self, areas: Areas) -> None:
        snapshots = Snapshots(areas.snapshots)
        snapshots.save("inst_1", 3, self.TABLE)
        back = snapshots.load("inst_1", 3)
        assert back.to_dict(orient="records") == self.TABLE.to_dict(orient="records")

    def test_a_missing_snapshot_is_no_table(self, areas: Areas) -> None:
        with pytest.raises(NoTable, match="after run 4 is missing"):
            Snapshots(areas.snapshots).load("inst_1", 4)


class TestLocalLinks:
    """On the local disk a plain name may still be a link: where it lands decides."""

    @pytest.fixture
    def local(self, tmp_path: Path) -> LocalArea:
        (tmp_path / "area").mkdir()
        (tmp_path / "secret.csv").write_text("a\n1\n")
        return LocalArea(tmp_path / "area", "files")

    def test_a_link_leading_out_is_refused_and_not_listed(
        self, local: LocalArea, tmp_path: Path
    ) -> None:
        (tmp_path / "area" / "link.csv").symlink_to(tmp_path / "secret.csv")
        with pytest.raises(InvalidPath, match="leads outside the files directory"):
            local.existing("link.csv")
        with pytest.raises(InvalidPath):
            local.file("link.csv").write(b"overwrite the secret")
        assert local.names() == []
        assert (tmp_path / "secret.csv").read_text() == "a\n1\n"

    def test_a_link_inside_the_area_is_a_file(self, local: LocalArea, tmp_path: Path) -> None:
        (tmp_path / "area" / "real.csv").write_text("r\n1\n")
        (tmp_path / "area" / "alias.csv").symlink_to(tmp_path / "area" / "real.csv")
        assert local.existing("alias.csv").read_bytes() == b"r\n1\n"
        assert local.names() == ["alias.csv", "real.csv"]

    def test_a_sub_directory_linked_out_is_refused(
        self, local: LocalArea, tmp_path: Path
    ) -> None:
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "0000000001.parquet").write_bytes(b"x")
        (tmp_path / "area" / "inst").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(InvalidPath, match="leads outside"):
            local.directory("inst").file("0000000001.parquet")

    def test_a_link_in_the_fallback_leading_out_is_refused(self, tmp_path: Path) -> None:
        for directory in ("uploads", "samples"):
            (tmp_path / directory).mkdir()
        (tmp_path / "secret.csv").write_text("a\n1\n")
        (tmp_path / "samples" / "link.csv").symlink_to(tmp_path / "secret.csv")
        area = LocalArea(tmp_path / "uploads", fallback=LocalArea(tmp_path / "samples",
                                                                   "samples"))
        with pytest.raises(InvalidPath, match="outside the samples directory"):
            area.existing("link.csv")

    def test_failed_writes_leave_no_temporary_file(self, local: LocalArea,
                                                   tmp_path: Path) -> None:
        with pytest.raises(RuntimeError):
            fail_while_writing(local.file("x.csv"))
        assert list((tmp_path / "area").iterdir()) == []


class TestSettings:
    def test_local_directories_are_the_default(self) -> None:
        assert Settings.model_fields["storage_url"].default is None

    @pytest.mark.parametrize("url", ["http://bucket/x", "s3://", "/var/files", "bucket/x"])
    def test_only_an_s3_url_names_an_object_store(self, url: str) -> None:
        with pytest.raises(ValidationError, match="STORAGE_URL must be s3://bucket"):
            Settings(storage_url=url)

    def test_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("STORAGE_URL", "s3://bucket/prefix")
        monkeypatch.setenv("STORAGE_OPTIONS", '{"endpoint_url": "http://127.0.0.1:9"}')
        settings = Settings()
        assert settings.storage_url == "s3://bucket/prefix"
        assert settings.storage_options == {"endpoint_url": "http://127.0.0.1:9"}
        assert "127.0.0.1:9" not in repr(settings)

    def test_an_empty_url_means_the_local_directories(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("STORAGE_URL", "")
        assert Settings().storage_url is None
