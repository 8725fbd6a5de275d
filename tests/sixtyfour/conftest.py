"""A sandbox served over real HTTP on loopback, and an enricher talking to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from workflow_engine.sandbox import SandboxConfig, create_sandbox
from workflow_engine.sixtyfour import (
    Enricher,
    Polling,
    RateBudget,
    RateLimit,
    Retries,
    SixtyfourClient,
    _QuietHandler,
    make_http,
)
from workflow_engine.sixtyfour.jobs import CLAIM_LEASE_MS
from workflow_engine.store import Store
from workflow_engine.store.upstream import UpstreamJobs


@dataclass
class Sandbox:
    """A running sandbox."""

    url: str
    config: SandboxConfig
    server: BaseWSGIServer

    def stats(self) -> dict[str, Any]:
        found: dict[str, Any] = httpx.get(f"{self.url}/_sandbox/stats").json()
        return found

    def settled(self, *, held: int = 0, answered: int = 0) -> dict[str, Any]:
        """Block until the sandbox holds ``held`` submissions and every answered task was
        polled (the sandbox's own signal; the 30 s only bound a broken run)."""
        found: dict[str, Any] = httpx.get(
            f"{self.url}/_sandbox/settled",
            params={"held": held, "answered": answered, "wait": 30}, timeout=40).json()
        assert found["settled"], found
        return found

    def release(self, *, answer: bool = True) -> None:
        httpx.post(f"{self.url}/_sandbox/release", json={"answer": answer}).raise_for_status()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    config = SandboxConfig(rate_per_minute=6000, latency_median={
        "enrich_lead": 0.3, "enrich_company": 0.3, "find_email": 0.1, "find_phone": 0.1,
        "find_email_bulk": 0.2},
        latency_spread=0.1)
    server = make_server("127.0.0.1", 0, create_sandbox(config), threaded=True,
                         request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Sandbox(f"http://127.0.0.1:{server.port}", config, server)
    server.shutdown()
    server.server_close()


def make_enricher(sandbox: Sandbox, store: Store, *, key: str = "sandbox-key",
                  rate: int = 6000, webhook_url: str | None = None,
                  claim_lease_ms: int = CLAIM_LEASE_MS) -> Enricher:
    client = SixtyfourClient(make_http(key, sandbox.url), RateBudget(RateLimit(rate)),
                             retries=Retries(attempts=6, base_seconds=0.05, cap_seconds=0.5))
    polling = Polling(expected_seconds={"enrich_lead": 30.0, "enrich_company": 30.0,
                                        "find_email": 5.0, "find_phone": 5.0,
                                        "find_email_bulk": 5.0},
                      min_interval=0.05)
    return Enricher(client, UpstreamJobs(store), polling=polling, workers=8,
                    webhook_url=webhook_url, claim_lease_ms=claim_lease_ms)


@pytest.fixture
def enricher(sandbox: Sandbox, store: Store) -> Iterator[Enricher]:
    found = make_enricher(sandbox, store)
    yield found
    found.close()
