"""Input files and outputs over HTTP: upload parsed first, confined names, downloads."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import post_definition, run
from tests.conftest import make_settings
from workflow_engine import create_app
from workflow_engine.api import EXTENSION, RUNNER

PROBLEM = "application/problem+json"


def upload(client: FlaskClient, content: bytes, filename: str = "new.csv", query: str = "",
           form: dict[str, str] | None = None) -> Any:
    data: dict[str, Any] = {"file": (io.BytesIO(content), filename), **(form or {})}
    return client.post(f"/api/files{query}", data=data, content_type="multipart/form-data")


class TestUpload:
    def test_parsed_on_upload(self, client: FlaskClient) -> None:
        response = upload(client, b"name,email\nAnn,a@x\nBo,\n")
        assert response.status_code == 201
        assert response.headers["Location"] == "/api/files/new.csv"
        assert response.json == {
            "name": "new.csv", "size": 23, "columns": ["name", "email"], "row_count": 2,
            "preview": [{"name": "Ann", "email": "a@x"}, {"name": "Bo", "email": None}]}
        names = [f["name"] for f in client.get("/api/files").json["items"]]
        assert names == ["leads.csv", "new.csv"]

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

    def test_too_large(self, tmp_path: Any) -> None:
        app = create_app(make_settings(tmp_path, max_upload_bytes=1000))
        response = upload(app.test_client(), b"a\n" + b"1\n" * 2000)
        assert (response.status_code, response.json["code"]) == (413, "payload_too_large")
        assert list((tmp_path / "files").iterdir()) == []
        app.extensions[RUNNER].close()
        app.extensions[EXTENSION].store.dispose()


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
