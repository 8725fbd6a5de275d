"""What every endpoint shares: problem+json errors, CORS, health, OpenAPI and docs."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from sqlalchemy import create_engine

from tests.conftest import BuildApp, make_settings
from workflow_engine.api import EXTENSION

PROBLEM = "application/problem+json"


class TestErrors:
    def test_unknown_route(self, client: FlaskClient) -> None:
        response = client.get("/api/nothing-here")
        assert response.status_code == 404
        assert response.content_type == PROBLEM
        assert response.json == {
            "type": "urn:workflow-engine:problem:route_not_found", "title": "No such endpoint",
            "status": 404, "detail": "No endpoint answers at /api/nothing-here.",
            "instance": "/api/nothing-here", "code": "route_not_found"}

    def test_wrong_method_names_the_allowed_ones(self, client: FlaskClient) -> None:
        response = client.delete("/api/definitions")
        assert (response.status_code, response.json["code"]) == (405, "method_not_allowed")
        assert response.content_type == PROBLEM
        assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))

    def test_other_http_errors_keep_their_status_and_headers(self, client: FlaskClient) -> None:
        """An unsatisfiable range is a 416 problem, body and status agreeing."""
        response = client.get("/docs/static/swagger-ui.css",
                              headers={"Range": "bytes=99999999-"})
        assert response.status_code == response.json["status"] == 416
        assert response.json["code"] == "requested_range_not_satisfiable"
        assert response.headers["Content-Range"].startswith("bytes */")

    def test_unexpected_errors_are_problems_without_internals(
        self, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bug answers a 500 problem that reveals nothing of the server."""
        def broken(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("secret internals")

        service = client.application.extensions[EXTENSION]
        monkeypatch.setattr(service, "list_definitions", broken)
        response = client.get("/api/definitions")
        assert (response.status_code, response.json["code"]) == (500, "internal_error")
        assert "secret" not in response.text


class TestHealth:
    def test_liveness(self, client: FlaskClient) -> None:
        assert client.get("/health").json == {"status": "ok"}

    def test_readiness_counts(self, client: FlaskClient, instance: dict[str, object]) -> None:
        body = client.get("/api/health").json
        assert (body["status"], body["database"], body["definitions"]) == ("ok", "ok", 1)
        assert body["instances"] == {"active": 1}
        assert body["uptime_seconds"] >= 0

    def test_readiness_fails_clearly_without_a_database(
        self, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = client.application.extensions[EXTENSION].store
        monkeypatch.setattr(store, "engine", create_engine("sqlite:////nonexistent/dir/x.db"))
        for url in ["/api/health", "/api/definitions", "/api/instances/x"]:
            response = client.get(url)
            assert (response.status_code, response.json["code"]) == (503, "service_unavailable")
            assert response.headers["Retry-After"] == "1"
            assert "nonexistent" not in response.text


class TestCors:
    def test_allows_the_configured_origin(
        self, tmp_path: object, database_url: str, build_app: BuildApp
    ) -> None:
        settings = make_settings(tmp_path, database_url=database_url, cors_origins="https://app.example")
        client = build_app(settings).test_client()
        allowed = client.get("/health", headers={"Origin": "https://app.example"})
        other = client.get("/health", headers={"Origin": "https://evil.example"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "Access-Control-Allow-Origin" not in other.headers

    def test_preflight_allows_our_headers(self, client: FlaskClient) -> None:
        response = client.options("/api/instances/x/actions/y", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "If-Match, Idempotency-Key, X-Actor"})
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert {"if-match", "idempotency-key", "x-actor"} <= set(allowed.split(", "))

    def test_preflight_is_answered_with_the_allowed_method(self, client: FlaskClient) -> None:
        response = client.options("/api/instances/x/actions/y", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]

    def test_answers_to_a_request_with_origin_carry_the_cors_headers(
        self, client: FlaskClient, instance: dict[str, object]
    ) -> None:
        response = client.post(f"/api/instances/{instance['id']}/actions/submit",
                               headers={"Origin": "https://app.example"})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
        exposed = response.headers["Access-Control-Expose-Headers"].lower().split(", ")
        assert {"etag", "location", "idempotent-replayed"} <= set(exposed)

    def test_errors_to_a_request_with_origin_carry_the_cors_headers(
        self, client: FlaskClient
    ) -> None:
        response = client.post("/api/instances/missing/actions/submit",
                               headers={"Origin": "https://app.example"})
        assert (response.status_code, response.content_type) == (404, PROBLEM)
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"

    @pytest.mark.parametrize("url", ["/health", "/api/instances/missing"])
    def test_answers_without_origin_carry_no_cors_headers_but_vary_on_it(
        self, client: FlaskClient, url: str
    ) -> None:
        response = client.get(url)
        assert not [name for name, _ in response.headers
                    if name.lower().startswith("access-control-")]
        # A shared cache must not answer a request with Origin from this answer.
        assert "Origin" in response.headers["Vary"]

    def test_a_listed_origin_is_echoed_and_varies(
        self, tmp_path: object, database_url: str, build_app: BuildApp
    ) -> None:
        settings = make_settings(tmp_path, database_url=database_url,
                                 cors_origins="https://app.example, https://admin.example")
        client = build_app(settings).test_client()
        response = client.get("/health", headers={"Origin": "https://admin.example"})
        assert response.headers["Access-Control-Allow-Origin"] == "https://admin.example"
        assert "Origin" in response.headers["Vary"]


class TestOpenApi:
    def test_document_is_valid_openapi_3_1(self, client: FlaskClient) -> None:
        document = client.get("/openapi.json").json
        assert document["openapi"] == "3.1.0"
        validate(document)

    def test_every_route_is_documented(self, client: FlaskClient) -> None:
        """Each API rule of the app appears in the document with its methods."""
        document = client.get("/openapi.json").json
        app = client.application
        for rule in app.url_map.iter_rules():
            if rule.rule == "/" or rule.rule.startswith(("/static", "/docs", "/openapi", "/ui/")):
                continue  # pages and their files, not the API
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
            assert methods <= set(document["paths"][path]), path

    def test_each_operation_names_the_scope_it_needs(self, client: FlaskClient) -> None:
        paths = client.get("/openapi.json").json["paths"]
        assert "`read`" in paths["/api/definitions/validate"]["post"]["description"]
        assert "`read`" in paths["/api/definitions/{definition_id}/validate"]["post"][
            "description"]
        assert "`admin`" in paths["/api/definitions"]["post"]["description"]

    def test_request_schema_is_the_validating_model(self, client: FlaskClient) -> None:
        schemas = client.get("/openapi.json").json["components"]["schemas"]
        state = schemas["StateSpec"]
        assert state["additionalProperties"] is False
        assert state["properties"]["id"]["pattern"] == "^[A-Za-z0-9_.-]{1,64}$"

    def test_interactive_docs_are_served_locally(self, client: FlaskClient) -> None:
        page = client.get("/docs")
        assert page.status_code == 200
        assert "/openapi.json" in page.text
        asset = client.get("/docs/static/swagger-ui-bundle.js")
        assert asset.status_code == 200
        assert len(asset.data) > 100_000
        asset.close()
        traversal = client.get("/docs/static/../../__init__.py")
        assert traversal.status_code == 404

    @pytest.mark.parametrize("path", ["/docs/", "/docs/index.html"])
    def test_other_spellings_of_the_docs_redirect_to_them(
        self, client: FlaskClient, path: str
    ) -> None:
        response = client.get(path)
        assert response.status_code == 308
        assert response.headers["Location"] == "/docs"
        assert client.get(path, follow_redirects=True).status_code == 200

    @pytest.mark.parametrize("path", ["/docs/static/", "/openapi.json/", "/docs/nothing"])
    def test_near_misses_of_the_docs_are_plain_not_found(
        self, client: FlaskClient, path: str
    ) -> None:
        response = client.get(path)
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"
