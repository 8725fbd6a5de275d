"""API tokens: 401 without one, 403 without the scope, the token's name as the actor."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import ROOT, BuildApp, approval, make_settings
from workflow_engine.api import EXTENSION, RUNNER
from workflow_engine.api.access import required_scope
from workflow_engine.auth import Scope, digest

TOKENS = {"reader": "r-" + "a" * 40, "runner": "u-" + "b" * 40, "admin": "d-" + "c" * 40,
          "bot": "t-" + "d" * 40}


def entries() -> list[dict[str, Any]]:
    return [
        {"name": "reader", "scopes": ["read"], "sha256": digest(TOKENS["reader"])},
        {"name": "runner", "scopes": ["run"], "sha256": digest(TOKENS["runner"])},
        {"name": "admin", "scopes": ["admin"], "sha256": digest(TOKENS["admin"])},
        {"name": "bot", "scopes": ["run"], "sha256": digest(TOKENS["bot"]),
         "may_set_actor": True},
    ]


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture
def secured(tmp_path: Path, database_url: str, build_app: BuildApp) -> Iterator[FlaskClient]:
    """An app with tokens from a tokens file, the test definition stored."""
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps({"tokens": entries()}))
    app = build_app(make_settings(tmp_path, database_url=database_url, tokens_file=tokens_file))
    client = app.test_client()
    assert client.post("/api/definitions", json=approval(),
                       headers=bearer("admin")).status_code == 201
    yield client
    app.extensions[RUNNER].close()
    app.extensions[EXTENSION].store.dispose()


class TestAuthentication:
    def test_health_is_open(self, secured: FlaskClient) -> None:
        assert secured.get("/health").status_code == 200

    @pytest.mark.parametrize("url", ["/", "/ui/app.js", "/ui/style.css",
                                     "/ui/vendor/preact.mjs"])
    def test_the_ui_page_and_its_files_are_open(self, secured: FlaskClient, url: str) -> None:
        """The page asks for a token itself; what it reads of the API still needs one."""
        response = secured.get(url)
        response.close()
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-cache"

    @pytest.mark.parametrize("url", ["/ui/../app.py", "/ui/%2e%2e/__init__.py",
                                     "/ui/vendor/../../__init__.py", "/ui/nothing.js"])
    def test_nothing_but_the_ui_files_is_served_under_ui(
        self, secured: FlaskClient, url: str,
    ) -> None:
        response = secured.get(url)
        assert response.status_code == 404
        assert b"import" not in response.data

    @pytest.mark.parametrize("headers", [
        {}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"},
        {"Authorization": TOKENS["admin"]}, {"Authorization": "Bearer "},
    ])
    @pytest.mark.parametrize("url", ["/api/definitions", "/api/health", "/openapi.json",
                                     "/metrics", "/api/instances/x"])
    def test_everything_else_needs_a_token(
        self, secured: FlaskClient, headers: dict[str, str], url: str
    ) -> None:
        response = secured.get(url, headers=headers)
        assert (response.status_code, response.json["code"]) == (401, "unauthenticated")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKENS["admin"] not in response.text

    def test_preflight_needs_no_token(self, secured: FlaskClient) -> None:
        response = secured.options("/api/instances", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert response.status_code == 200


class TestScopes:
    @pytest.mark.parametrize(
        ("token", "method", "url", "body", "status"),
        [
            ("reader", "get", "/api/definitions", None, 200),
            ("reader", "post", "/api/instances", {"definition_id": "approval"}, 403),
            ("runner", "post", "/api/instances", {"definition_id": "approval"}, 201),
            ("runner", "post", "/api/definitions", approval(id="other"), 403),
            ("runner", "put", "/api/definitions/approval", approval(name="v2"), 403),
            ("runner", "get", "/api/instances", None, 200),
            ("admin", "put", "/api/definitions/approval", approval(name="v2"), 201),
            ("admin", "post", "/api/instances", {"definition_id": "approval"}, 201),
            ("reader", "post", "/api/definitions/validate", approval(id="other"), 200),
            ("reader", "post", "/api/definitions/approval/validate", approval(name="v2"), 200),
            ("reader", "put", "/api/definitions/validate", approval(id="validate"), 403),
            ("reader", "post", "/api/definitions", approval(id="other"), 403),
        ],
    )
    def test_scope_table(self, secured: FlaskClient, token: str, method: str, url: str,
                         body: Any, status: int) -> None:
        response = getattr(secured, method)(url, json=body, headers=bearer(token))
        assert response.status_code == status, response.json
        if status == 403:
            assert response.json["code"] == "insufficient_scope"
            assert token in response.json["detail"]

    @pytest.mark.parametrize(
        ("method", "path", "scope"),
        [
            ("POST", "/api/definitions/validate", Scope.READ),
            ("POST", "/api/definitions/approval/validate", Scope.READ),
            ("POST", "/api/definitions/validate/validate", Scope.READ),
            ("POST", "/api/definitions", Scope.ADMIN),
            ("PUT", "/api/definitions/validate", Scope.ADMIN),
            ("PUT", "/api/definitions/approval/validate", Scope.ADMIN),
            ("POST", "/api/definitions/validate/more", Scope.ADMIN),
            ("POST", "/api/definitions//validate", Scope.ADMIN),
            ("POST", "/api/definitions/a/b/validate", Scope.ADMIN),
            ("POST", "/api/instances/validate", Scope.RUN),
        ],
    )
    def test_checking_a_definition_needs_only_reading(
        self, method: str, path: str, scope: Scope
    ) -> None:
        """A check stores nothing; anything else under /api/definitions that is not a read
        needs admin."""
        assert required_scope(method, path) is scope

    def test_a_readers_check_stores_nothing(self, secured: FlaskClient) -> None:
        checked = secured.post("/api/definitions/validate", json=approval(id="other"),
                               headers=bearer("reader"))
        assert checked.json["valid"]
        assert secured.get("/api/definitions/other", headers=bearer("reader")).status_code \
            == 404

    def test_refused_requests_change_nothing(self, secured: FlaskClient) -> None:
        before = secured.get("/api/instances", headers=bearer("reader")).json
        secured.post("/api/instances", json={"definition_id": "approval"},
                     headers=bearer("reader"))
        assert secured.get("/api/instances", headers=bearer("reader")).json == before


class TestWhoAmI:
    @pytest.mark.parametrize(("token", "scopes", "may_set_actor"), [
        ("reader", ["read"], False),
        ("runner", ["read", "run"], False),
        ("admin", ["read", "run", "admin"], False),
        ("bot", ["read", "run"], True),
    ])
    def test_it_names_the_token_and_every_scope_it_covers(
        self, secured: FlaskClient, token: str, scopes: list[str], may_set_actor: bool,
    ) -> None:
        response = secured.get("/api/whoami", headers=bearer(token))
        assert response.status_code == 200
        assert response.json == {"authenticated": True, "auth_required": True,
                                 "token": token, "scopes": scopes,
                                 "may_set_actor": may_set_actor}
        assert response.headers["Cache-Control"] == "no-store"

    @pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
    def test_without_a_valid_token_it_answers_401_like_everything_else(
        self, secured: FlaskClient, headers: dict[str, str],
    ) -> None:
        response = secured.get("/api/whoami", headers=headers)
        assert (response.status_code, response.json["code"]) == (401, "unauthenticated")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    def test_an_open_server_grants_every_scope(self, client: FlaskClient) -> None:
        response = client.get("/api/whoami")
        assert response.json == {"authenticated": False, "auth_required": False,
                                 "token": None, "scopes": ["read", "run", "admin"],
                                 "may_set_actor": True}

    def test_it_needs_only_reading(self) -> None:
        assert required_scope("GET", "/api/whoami") is Scope.READ


class TestActor:
    def start(self, client: FlaskClient, token: str, **headers: str) -> Any:
        return client.post("/api/instances", json={"definition_id": "approval"},
                           headers={**bearer(token), **headers})

    def test_the_tokens_name_is_the_actor(self, secured: FlaskClient) -> None:
        started = self.start(secured, "runner").json
        history = secured.get(f"/api/instances/{started['id']}/history",
                              headers=bearer("reader")).json["items"]
        assert history[0]["actor"] == "runner"

    def test_x_actor_refines_it_only_when_allowed(self, secured: FlaskClient) -> None:
        refused = self.start(secured, "runner", **{"X-Actor": "mallory"})
        assert (refused.status_code, refused.json["code"]) == (403, "actor_not_allowed")
        allowed = self.start(secured, "bot", **{"X-Actor": "alice"}).json
        history = secured.get(f"/api/instances/{allowed['id']}/history",
                              headers=bearer("reader")).json["items"]
        assert history[0]["actor"] == "bot/alice"


def test_tokens_never_reach_the_logs(
    secured: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        secured.get("/api/instances", headers=bearer("admin"))
        secured.get("/api/instances", headers={"Authorization": "Bearer leaked-guess"})
    assert TOKENS["admin"] not in caplog.text
    assert "leaked-guess" not in caplog.text


def test_tokens_in_the_environment(tmp_path: Path, database_url: str, build_app: BuildApp) -> None:
    app = build_app(make_settings(tmp_path, database_url=database_url,
                                   api_tokens=json.dumps(entries()[:1])))
    client = app.test_client()
    assert client.get("/api/definitions").status_code == 401
    assert client.get("/api/definitions", headers=bearer("reader")).status_code == 200
    app.extensions[RUNNER].close()
    app.extensions[EXTENSION].store.dispose()


def test_an_open_server_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_server.py"), "--host", "0.0.0.0", "--port", "1",
         "--db", str(tmp_path / "wf.db")],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "refusing to serve on 0.0.0.0" in result.stderr


def test_the_token_tool_makes_a_working_entry(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workflow_engine.auth", "--name", "ops", "--scopes", "run"],
        capture_output=True, text=True, check=True,
    )
    token = result.stdout.split("once, give it to the client): ")[1].split()[0]
    entry = json.loads(result.stdout.strip().splitlines()[-1])
    assert entry["sha256"] == digest(token)
    assert entry["scopes"] == ["run"]
