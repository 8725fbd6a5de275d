"""The compute block through the real app: checked when a definition is saved, run as
its state is entered, its columns usable by the blocks after it."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.api.conftest import post_definition, run

HEADER = ["name", "company", "email", "company_location", "linkedin"]


def pipeline(columns: dict[str, str], **params: Any) -> dict[str, Any]:
    """read_csv -> compute -> filter (on the computed ``at_ariglad``) -> save_csv."""
    return {
        "id": "computed", "name": "Computed leads",
        "states": [
            {"id": "ready", "name": "Ready", "is_initial": True},
            {"id": "reading", "name": "Reading",
             "block": {"type": "read_csv", "params": {"file": "leads.csv"}}},
            {"id": "computing", "name": "Computing",
             "block": {"type": "compute", "params": {"columns": columns, **params}}},
            {"id": "keeping", "name": "Keeping Ariglad",
             "block": {"type": "filter", "params": {"conditions": [
                 {"column": "at_ariglad", "operator": "is_true"}]}}},
            {"id": "saved", "name": "Saved", "is_final": True,
             "block": {"type": "save_csv", "params": {"file_name": "computed.csv"}}},
        ],
        "actions": [
            {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "reading"},
            {"id": "compute", "name": "Compute", "trigger": "auto",
             "from_states": ["reading"], "to_state": "computing"},
            {"id": "keep", "name": "Keep", "trigger": "auto",
             "from_states": ["computing"], "to_state": "keeping"},
            {"id": "save", "name": "Save", "trigger": "auto",
             "from_states": ["keeping"], "to_state": "saved"},
        ],
    }


COLUMNS = {
    "at_ariglad": "startswith(lower(company), 'ariglad')",
    "contact": "name + ' <' + email + '>'",
    "city": "strip(row['company_location'][0:6])",
}


class TestSaving:
    def test_an_expression_that_does_not_parse_is_refused_at_its_path(
        self, client: FlaskClient
    ) -> None:
        document = pipeline({**COLUMNS, "contact": "name + + * email"})
        response = client.post("/api/definitions", json=document)
        assert (response.status_code, response.json["code"]) == (422, "definition_invalid")
        error = response.json["errors"][0]
        assert (error["path"], error["code"]) == (
            "states[2].block.params.columns.contact", "expression_invalid")
        assert "line 1, column 10" in error["message"]

    def test_python_beyond_the_language_is_refused(self, client: FlaskClient) -> None:
        document = pipeline({"at_ariglad": "().__class__.__bases__[0].__subclasses__()"})
        response = client.post("/api/definitions", json=document)
        assert response.status_code == 422
        assert "attribute access" in response.json["errors"][0]["message"]

    def test_an_unknown_column_is_caught_where_the_columns_are_known(
        self, client: FlaskClient
    ) -> None:
        document = pipeline({**COLUMNS, "country": "lower(undergrad_country)"})
        response = client.post("/api/definitions", json=document)
        assert response.status_code == 422
        assert [(e["path"], e["code"]) for e in response.json["errors"]] == [
            ("states[2].block.params", "unknown_column")]
        assert "'undergrad_country'" in response.json["errors"][0]["message"]

    def test_the_next_blocks_see_the_computed_columns(self, client: FlaskClient) -> None:
        checked = client.post("/api/definitions/validate", json=pipeline(COLUMNS)).json
        assert checked["valid"], checked["errors"]
        assert checked["states"]["computing"]["columns_out"]["columns"] == [
            *HEADER, "at_ariglad", "contact", "city", "compute_error"]

    def test_the_catalog_lists_it_with_its_schema(self, client: FlaskClient) -> None:
        entries = {e["type"]: e for e in client.get("/api/blocks").json["items"]}
        schema = entries["compute"]["params_schema"]
        assert schema["required"] == ["columns"]
        assert set(schema["properties"]) == {"columns", "on_row_error", "max_error_ratio",
                                             "prefix"}


class TestRunning:
    def test_read_compute_filter_save_with_row_errors_in_their_column(
        self, client: FlaskClient
    ) -> None:
        post_definition(client, pipeline(COLUMNS, max_error_ratio=1))
        done = run(client, "computed", id="c1")
        assert (done["status"], done["current_state"]) == ("completed", "saved"), done
        page = client.get("/api/instances/c1/data?limit=100").json
        assert page["columns"] == [*HEADER, "at_ariglad", "contact", "city", "compute_error"]
        rows = {row["name"]: row for row in page["rows"]}
        assert set(rows) == {"Maya Okafor", "Jonas Brandt", "Aiko Tanaka", "Elena Petrova",
                             "Ben Carter"}
        jonas, maya = rows["Jonas Brandt"], rows["Maya Okafor"]
        assert jonas["contact"] == "Jonas Brandt <jonas.brandt@ariglad.example>"
        assert (jonas["city"], jonas["at_ariglad"], jonas["compute_error"]) == (
            "Austin", True, None)
        assert maya["contact"] is None
        assert maya["compute_error"].startswith("missing_value: contact: 'email' empty")

    def test_too_many_failed_rows_fail_the_block_not_the_server(
        self, client: FlaskClient
    ) -> None:
        post_definition(client, pipeline(COLUMNS))  # 9 of 15 rows lack an email
        done = run(client, "computed", id="c2")
        assert (done["status"], done["current_state"]) == ("failed", "computing")
        assert "9 of 15 rows failed" in done["error"]["message"]
