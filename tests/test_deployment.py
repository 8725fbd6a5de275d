"""The cluster as docker-compose.yml describes it: every setting it gives is one the
engine reads, and the combination is one the engine accepts (Docker itself is not
needed to check that much)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from workflow_engine.settings import Settings

COMPOSE = ROOT / "docker-compose.yml"


def services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return found


def resolved(value: str) -> str:
    """``${NAME:-default}`` as compose reads it with NAME unset; required ones as a token."""
    value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{API_TOKENS:\?[^}]*\}", "[]", value)


def test_the_cluster_has_a_database_an_object_store_two_servers_and_two_workers() -> None:
    found = services()
    commands = {name: " ".join(service.get("command", [])) for name, service in found.items()
                if isinstance(service.get("command", []), list)}
    workers = [name for name, command in commands.items()
               if "workflow_engine.worker" in command]
    servers = [name for name, service in found.items()
               if service.get("build") and "ports" in service]
    assert len(workers) == 2
    assert len(servers) == 2
    assert "postgres" in found
    assert "minio" in found


def test_every_setting_it_gives_is_read_and_accepted_by_the_engine(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("server-1", "worker-1"):
        environment = {key: resolved(str(value))
                       for key, value in services()[name]["environment"].items()}
        known = {field.upper() for field in Settings.model_fields}
        assert set(environment) <= known, set(environment) - known
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        assert settings.task_engine == "procrastinate"
        assert settings.storage_url == "s3://workflow/cluster"
        assert settings.storage_options["endpoint_url"] == "http://minio:9000"
