"""Input files and outputs over HTTP: upload parsed first, confined names, downloads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.api.conftest import post_definition, run
from tests.conftest import ROOT, BuildApp, make_settings
from tests.object_store import ObjectStore
from workflow_engine.api import EXTENSION, RUNNER
from workflow_engine.settings import Settings

SAMPLE_NAMES = sorted(p.name for p in (ROOT / "data").glob("*.csv"))  # leads, companies

PROBLEM = "application/problem+json"


def upload(client: FlaskClient, content: bytes, filename: str = "new.csv", query: str = "",
           form: dict[str, str] | None = None) -> Any:
    fields: dict[str, Any] = {"file": FileStorage(io.BytesIO(content), filename), **(form or {})}
    # Encoded in memory: the test client would spool a large body to a file it never closes.
    boundary, body = encode_multipart(fields)
    return client.post(f"/api/files{query}", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


class TestUpload:
    def test_parsed_on_upload(self, client: FlaskClient) -> None:
        response = upload(client, b"name,email\nAnn,a@x\nBo,\n")
        assert response.status_code == 201
        assert response.headers["Location"] == "/api/files/new.csv"
        assert response.json == {
            "name": "new.csv", "size": 23, "columns": ["name", "email"], "row_count": 2,
            "preview": [{"name": "Ann", "email": "a@x"}, {"name": "Bo", "email": None}]}
        names = [f["name"] for f in client.get("/api/files").json["items"]]
        assert names == sorted([*SAMPLE_NAMES, "new.csv"])

    def test_encoding_and_delimiter(self, client: FlaskClient) -> None:
        content = "name;city\nJosé;Zürich\n".encode("latin-1")
        refused = upload(client, content, filename="l.csv")
        assert (refused.status_code, refused.json["code"]) == (422, "csv_invalid")
        response = upload(client, content, filename="l.csv",
                          query="?encoding=latin-1&delimiter=;")
        assert response.json["preview"] == [{"name": "José", "city": "Zürich"}]
        preview = client.get("/api/files/l.csv/preview?encoding=latin-1&delimiter=;").json
        assert preview["columns"] == ["name", "city"]

    def test_a_name_may_be_given(self, client: FlaskClient) -> None:
        response = upload(client, b"a\n1\n", filename="whatever.csv",
                          form={"name": "chosen.csv"})
        assert response.json["name"] == "chosen.csv"

    @pytest.mark.parametrize(
        ("content", "words"),
        [
            (b"", "is empty"),
            (b"a,b\n", "header but no data rows"),
            (b"a,b\n1,2,3\n", "not a well-formed CSV"),
            (b"a\n\xff\xfe\n", "not valid utf-8"),
            (b"a,a\n1,2\n", "duplicate column names"),
        ],
    )
    def test_broken_csvs_are_refused_and_not_stored(
        self, client: FlaskClient, content: bytes, words: str
    ) -> None:
        response = upload(client, content, filename="broken.csv")
        assert (response.status_code, response.json["code"]) == (422, "csv_invalid")
        assert words in response.json["detail"]
        assert "broken.csv" not in [f["name"] for f in client.get("/api/files").json["items"]]

    @pytest.mark.parametrize("name", ["../escape.csv", "..", "/etc/x.csv", ".hidden.csv",
                                      "a\\..\\b.csv", "a\x01.csv"])
    def test_hostile_names(self, client: FlaskClient, name: str) -> None:
        response = upload(client, b"a\n1\n", filename="ok.csv", form={"name": name})
        assert (response.status_code, response.json["code"]) == (400, "invalid_path")
        assert response.content_type == PROBLEM

    def test_only_csv(self, client: FlaskClient) -> None:
        response = upload(client, b"a\n1\n", filename="data.txt")
        assert (response.status_code, response.json["code"]) == (422, "validation_failed")

    def test_no_file_field(self, client: FlaskClient) -> None:
        response = client.post("/api/files", data={"other": "x"},
                               content_type="multipart/form-data")
        assert (response.status_code, response.json["code"]) == (422, "validation_failed")

    def test_an_existing_file_needs_overwrite(self, client: FlaskClient) -> None:
        upload(client, b"a\n1\n")
        again = upload(client, b"b\n2\n")
        assert (again.status_code, again.json["code"]) == (409, "file_exists")
        replaced = upload(client, b"b\n2\n", query="?overwrite=true")
        assert replaced.json["columns"] == ["b"]

    def test_too_large(self, tmp_path: Any, database_url: str, build_app: BuildApp) -> None:
        app = build_app(make_settings(tmp_path, database_url=database_url, max_upload_bytes=1000))
        response = upload(app.test_client(), b"a\n" + b"1\n" * 2000)
        assert (response.status_code, response.json["code"]) == (413, "payload_too_large")
        assert list((tmp_path / "files").iterdir()) == []
        app.extensions[RUNNER].close()
        app.extensions[EXTENSION].store.dispose()


def reader(file: str) -> dict[str, Any]:
    """A definition whose 'run' reads ``file`` with read_csv."""
    return {
        "id": "reader", "name": "Reader",
        "states": [{"id": "ready", "name": "Ready", "is_initial": True},
                   {"id": "read", "name": "Read", "is_final": True,
                    "block": {"type": "read_csv", "params": {"file": file}}}],
        "actions": [{"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "read"}],
    }


NOT_UTF8_HEADER = b"caf\xe9,b\n1,2\n"


class TestUndecodableFiles:
    """A file that is not in its encoding is csv_invalid wherever it is read, and the
    message says where the first bad byte is."""

    def test_refused_at_upload(self, client: FlaskClient) -> None:
        response = upload(client, NOT_UTF8_HEADER, filename="cafe.csv")
        assert (response.status_code, response.json["code"]) == (422, "csv_invalid")
        assert response.content_type == PROBLEM
        assert "offset 3 (0xe9)" in response.json["detail"]
        assert response.json["offset"] == 3

    def test_refused_by_preview(self, client: FlaskClient, settings: Settings) -> None:
        (settings.files_dir / "cafe.csv").write_bytes(NOT_UTF8_HEADER)
        response = client.get("/api/files/cafe.csv/preview")
        assert (response.status_code, response.json["code"]) == (422, "csv_invalid")
        assert response.json["offset"] == 3

    @pytest.mark.parametrize("dialect", ["encoding=hex", "encoding=zlib", "encoding=rot13",
                                         "delimiter=%C3%A9", "delimiter=%00"])
    def test_a_dialect_that_reads_no_text_is_a_bad_parameter(
        self, client: FlaskClient, settings: Settings, dialect: str
    ) -> None:
        """Byte-to-byte codecs and non-ASCII delimiters are refused before any reading."""
        (settings.files_dir / "ok.csv").write_text("a,b\n1,2\n")
        preview = client.get(f"/api/files/ok.csv/preview?{dialect}")
        uploaded = upload(client, b"a,b\n1,2\n", "new.csv", query=f"?{dialect}")
        assert (preview.status_code, preview.json["code"]) == (400, "invalid_parameter")
        assert (uploaded.status_code, uploaded.json["code"]) == (400, "invalid_parameter")

    def test_a_bad_byte_further_down_is_found_too(self, client: FlaskClient) -> None:
        response = upload(client, b"name\nok\ncaf\xe9\n", filename="cafe.csv")
        assert (response.json["code"], response.json["offset"]) == ("csv_invalid", 11)

    def test_read_csv_fails_with_csv_invalid(
        self, client: FlaskClient, settings: Settings
    ) -> None:
        (settings.files_dir / "cafe.csv").write_bytes(NOT_UTF8_HEADER)
        post_definition(client, reader("cafe.csv"))
        failed = run(client, "reader", id="cafe")
        assert failed["status"] == "failed"
        assert (failed["error"]["code"], failed["error"]["offset"]) == ("csv_invalid", 3)
        assert "offset 3" in failed["error"]["message"]
        last = client.get("/api/instances/cafe/history?limit=200").json["items"][-1]
        assert (last["type"], last["data"]["error"]["code"]) == ("block_failed", "csv_invalid")


class TestMessagesQuoteLittle:
    """Messages about a broken file quote at most a short, escaped excerpt of it."""

    def test_a_binary_file_named_csv(self, client: FlaskClient) -> None:
        response = upload(client, bytes(range(256)) * 4, filename="binary.csv")
        assert (response.status_code, response.json["code"]) == (422, "csv_invalid")
        detail = response.json["detail"]
        assert detail.isprintable()
        assert len(detail) < 160

    def test_a_long_ragged_row(self, client: FlaskClient) -> None:
        response = upload(client, b"a\n" + b"\x01," * 500 + b"\n", filename="ragged.csv")
        detail = response.json["detail"]
        assert "a row has 501 fields where the header has 1" in detail
        assert "\\x01" in detail
        assert detail.isprintable()
        assert len(detail) < 160

    @given(content=st.binary(max_size=300))
    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.differing_executors])
    def test_any_bytes_are_a_table_or_a_short_problem(
        self, client: FlaskClient, content: bytes
    ) -> None:
        response = upload(client, content, filename="any.csv", query="?overwrite=true")
        assert response.status_code == 201 or (
            response.status_code == 422 and response.content_type == PROBLEM
        ), response.json
        if response.status_code == 422:
            assert response.json["code"] == "csv_invalid"
            assert response.json["detail"].isprintable()
            assert len(response.json["detail"]) < 200


def wide(columns: int) -> bytes:
    """A CSV with a header of ``columns`` names and one row."""
    return (",".join(f"c{i}" for i in range(columns)) + "\n"
            + ",".join("1" for _ in range(columns)) + "\n").encode()


class TestColumnLimit:
    """A file wider than MAX_CSV_COLUMNS is refused from its header, before it is parsed."""

    def test_a_hundred_thousand_columns_are_refused_at_upload(self, client: FlaskClient) -> None:
        response = upload(client, wide(100_000), filename="wide.csv")
        assert (response.status_code, response.json["code"]) == (422, "csv_invalid")
        assert response.json["max_columns"] == 1000
        assert "more than 1000 columns" in response.json["detail"]
        assert "wide.csv" not in [f["name"] for f in client.get("/api/files").json["items"]]

    def test_the_limit_itself_is_accepted(self, client: FlaskClient) -> None:
        assert upload(client, wide(1000), filename="wide.csv").status_code == 201
        refused = upload(client, wide(1001), filename="wider.csv")
        assert (refused.json["code"], refused.json["column_count"]) == ("csv_invalid", 1001)

    @pytest.fixture
    def narrow(self, tmp_path: Any, database_url: str, build_app: BuildApp) -> Any:
        """An app that reads at most three columns."""
        app = build_app(make_settings(tmp_path, database_url=database_url, max_csv_columns=3))
        (tmp_path / "files" / "four.csv").write_bytes(b"a,b,c,d\n1,2,3,4\n")
        yield app.test_client()
        app.extensions[RUNNER].close()
        app.extensions[EXTENSION].store.dispose()

    def test_the_setting_applies_to_upload_preview_and_read_csv(self, narrow: FlaskClient) -> None:
        assert upload(narrow, b"a,b,c\n1,2,3\n", filename="three.csv").status_code == 201
        refused = upload(narrow, b"a,b,c,d\n1,2,3,4\n", filename="new.csv")
        assert (refused.json["code"], refused.json["column_count"]) == ("csv_invalid", 4)
        preview = narrow.get("/api/files/four.csv/preview")
        assert (preview.status_code, preview.json["code"]) == (422, "csv_invalid")
        post_definition(narrow, reader("four.csv"))
        failed = run(narrow, "reader", id="four")
        assert (failed["status"], failed["error"]["code"]) == ("failed", "csv_invalid")
        assert failed["error"]["max_columns"] == 3

    def test_a_header_line_past_its_byte_bound_is_refused(self, narrow: FlaskClient) -> None:
        """Three columns of at most 64 KiB in all: a longer header is not read to its end."""
        content = b"a," + b"b" * (70 * 1024) + b"\n1,2\n"
        response = upload(narrow, content, filename="long.csv")
        assert (response.status_code, response.json["code"]) == (422, "csv_invalid")
        assert response.json["max_header_bytes"] == 64 * 1024


class TestSamples:
    """Uploads go to the uploads directory; the shipped samples (data/) are found after
    it, by name, and never written to."""

    SAMPLES = ROOT / "data"

    @pytest.fixture
    def shipped(self, tmp_path: Any, database_url: str, build_app: BuildApp) -> Any:
        """An app whose samples are the repository's data/ and whose uploads are empty."""
        before = {p.name: p.read_bytes() for p in self.SAMPLES.iterdir()}
        app = build_app(make_settings(tmp_path, database_url=database_url,
                                       samples_dir=self.SAMPLES))
        yield app.test_client()
        app.extensions[RUNNER].close()
        app.extensions[EXTENSION].store.dispose()
        assert {p.name: p.read_bytes() for p in self.SAMPLES.iterdir()} == before

    def test_an_upload_lands_in_the_uploads_directory(
        self, shipped: FlaskClient, tmp_path: Any
    ) -> None:
        assert upload(shipped, b"a\n1\n", filename="mine.csv").status_code == 201
        assert (tmp_path / "files" / "mine.csv").read_bytes() == b"a\n1\n"
        assert not (self.SAMPLES / "mine.csv").exists()
        names = [f["name"] for f in shipped.get("/api/files").json["items"]]
        assert names == sorted([*SAMPLE_NAMES, "mine.csv"])

    def test_the_sample_is_listed_previewed_downloaded_and_read(
        self, shipped: FlaskClient
    ) -> None:
        listed = {f["name"]: f for f in shipped.get("/api/files").json["items"]}
        assert sorted(listed) == SAMPLE_NAMES
        assert listed["leads.csv"]["size"] == (self.SAMPLES / "leads.csv").stat().st_size
        preview = shipped.get("/api/files/leads.csv/preview?rows=2").json
        assert preview["columns"][:3] == ["name", "company", "email"]
        download = shipped.get("/api/files/leads.csv")
        assert download.data == (self.SAMPLES / "leads.csv").read_bytes()
        download.close()
        post_definition(shipped, reader("leads.csv"))
        assert run(shipped, "reader", id="r")["status"] == "completed"

    def test_an_upload_of_a_sample_name_shadows_it(
        self, shipped: FlaskClient, tmp_path: Any
    ) -> None:
        """The name is taken (409 without overwrite); with it, the upload is what
        read_csv reads, and the sample file is untouched."""
        refused = upload(shipped, b"x\n1\n", filename="leads.csv")
        assert (refused.status_code, refused.json["code"]) == (409, "file_exists")
        assert upload(shipped, b"x\n1\n", filename="leads.csv",
                      query="?overwrite=true").status_code == 201
        assert (tmp_path / "files" / "leads.csv").read_bytes() == b"x\n1\n"
        assert shipped.get("/api/files/leads.csv/preview").json["columns"] == ["x"]

    def test_uploads_default_to_var(self) -> None:
        fields = Settings.model_fields
        assert fields["files_dir"].default == Path("var/files")
        assert fields["samples_dir"].default == Path("data")

    def test_an_empty_samples_dir_means_none(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SAMPLES_DIR", "")
        assert Settings().samples_dir is None


class TestRead:
    def test_download_and_preview(self, client: FlaskClient) -> None:
        download = client.get("/api/files/leads.csv")
        assert download.mimetype == "text/csv"
        assert download.data.startswith(b"name,company,email")
        download.close()
        preview = client.get("/api/files/leads.csv/preview?rows=3").json
        assert (len(preview["preview"]), preview["row_count"]) == (3, None)
        assert preview["columns"][0] == "name"

    @pytest.mark.parametrize("url", ["/api/files/nope.csv", "/api/outputs/nope.csv",
                                     "/api/files/nope.csv/preview"])
    def test_missing(self, client: FlaskClient, url: str) -> None:
        response = client.get(url)
        assert (response.status_code, response.json["code"]) == (404, "file_not_found")

    @pytest.mark.parametrize("url", ["/api/files/..%2Fsecrets.csv", "/api/outputs/%2E%2E",
                                     "/api/files/.env", "/api/files/%00.csv/preview"])
    def test_traversal(self, client: FlaskClient, url: str) -> None:
        response = client.get(url)
        assert response.status_code in (400, 404)
        assert response.content_type == PROBLEM

    def test_outputs_written_by_save_csv(self, client: FlaskClient) -> None:
        post_definition(client, {
            "id": "copy", "name": "Copy",
            "states": [{"id": "ready", "name": "R", "is_initial": True},
                       {"id": "read", "name": "Read",
                        "block": {"type": "read_csv", "params": {"file": "leads.csv"}}},
                       {"id": "saved", "name": "S", "is_final": True,
                        "block": {"type": "save_csv", "params": {"file_name": "copy.csv"}}}],
            "actions": [{"id": "run", "name": "Run", "from_states": ["ready"],
                         "to_state": "read"},
                        {"id": "save", "name": "Save", "from_states": ["read"],
                         "to_state": "saved", "trigger": "auto"}],
        })
        assert run(client, "copy")["status"] == "completed"
        assert [f["name"] for f in client.get("/api/outputs").json["items"]] == ["copy.csv"]
        download = client.get("/api/outputs/copy.csv")
        assert len(download.data.decode().strip().splitlines()) == 16
        download.close()


class TestObjectStorage:
    """With STORAGE_URL, uploads, outputs and snapshots live in the object store (moto's
    S3 server here), so any process of a cluster reads them; nothing lands on local disk."""

    COPY: ClassVar[dict[str, Any]] = {
        "id": "copy", "name": "Copy",
        "states": [{"id": "ready", "name": "R", "is_initial": True},
                   {"id": "read", "name": "Read",
                    "block": {"type": "read_csv", "params": {"file": "leads.csv"}}},
                   {"id": "saved", "name": "S", "is_final": True,
                    "block": {"type": "save_csv", "params": {"file_name": "copy.csv"}}}],
        "actions": [{"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "read"},
                    {"id": "save", "name": "Save", "from_states": ["read"],
                     "to_state": "saved", "trigger": "auto"}],
    }

    def test_a_pipeline_reads_and_writes_the_object_store(
        self, settings: Settings, build_app: BuildApp, object_store: ObjectStore,
        bucket: str, tmp_path: Path,
    ) -> None:
        clustered = settings.model_copy(update={
            "storage_url": f"s3://{bucket}/engine", "storage_options": object_store.options,
            "files_dir": tmp_path / "unused-files", "outputs_dir": tmp_path / "unused-outputs",
            "snapshots_dir": tmp_path / "unused-snapshots",
        })
        client = build_app(clustered).test_client()
        leads = (ROOT / "data" / "leads.csv").read_bytes()
        assert upload(client, leads, filename="leads.csv").status_code == 201
        post_definition(client, self.COPY)
        done = run(client, "copy", id="c1")
        assert done["status"] == "completed", done
        assert [f["name"] for f in client.get("/api/outputs").json["items"]] == ["copy.csv"]
        download = client.get("/api/outputs/copy.csv")
        assert download.status_code == 200
        assert download.content_type.startswith("text/csv")
        saved = pd.read_csv(io.BytesIO(download.data), dtype=str, keep_default_na=False)
        read = pd.read_csv(io.BytesIO(leads), dtype=str, keep_default_na=False)
        assert saved.to_dict(orient="records") == read.to_dict(orient="records")
        download.close()
        # The table after read_csv is read back from its snapshot in the object store.
        table = client.get("/api/instances/c1/data?limit=100")
        assert table.status_code == 200, table.json
        assert [row["name"] for row in table.json["rows"]] == saved["name"].tolist()
        fs = object_store.filesystem()
        stored = sorted(str(name).removeprefix(f"{bucket}/engine/")
                        for name in fs.find(f"{bucket}/engine"))
        assert stored[:2] == ["files/leads.csv", "outputs/copy.csv"]
        assert [name.split("/")[:2] for name in stored[2:]] == [["snapshots", "c1"]]
        assert fs.cat_file(f"{bucket}/engine/outputs/copy.csv") == download.data
        for unused in ("unused-files", "unused-outputs", "unused-snapshots"):
            assert not (tmp_path / unused).exists()
