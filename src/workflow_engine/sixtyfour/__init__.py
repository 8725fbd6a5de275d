"""Sixtyfour: the enrichment API, its client, the shared scheduler, and its sandbox."""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..metrics import Metrics
from ..store import Store
from ..store.budgets import RateBudgets
from ..store.upstream import UpstreamJobs
from .budget import RateBudget, SharedRateBudget
from .client import JobStatus, SixtyfourClient, make_http
from .config import DEFAULT_BASE_URL, ENDPOINTS, Polling, RateLimit, Retries
from .jobs import Enricher, Outcome, request_key

__all__ = [
    "DEFAULT_BASE_URL",
    "ENDPOINTS",
    "Enricher",
    "Enrichment",
    "JobStatus",
    "Outcome",
    "Polling",
    "RateBudget",
    "RateLimit",
    "Retries",
    "SharedRateBudget",
    "SixtyfourClient",
    "make_http",
    "request_key",
]

log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """The in-process sandbox does not log every request to stdout."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Stay quiet."""


class Enrichment:
    """The process's enricher, built when a block first needs it.

    With an API key it talks to Sixtyfour (``base_url``); without one it starts the
    sandbox in this process on a free loopback port and says so loudly.
    """

    def __init__(
        self, store: Store, metrics: Metrics | None, *, api_key: str | None,
        base_url: str = DEFAULT_BASE_URL, rate_per_minute: int = 500,
        polling: Polling | None = None, sandbox_options: dict[str, Any] | None = None,
        webhook_url: str | None = None,
    ) -> None:
        self.webhook_url = webhook_url
        self.store = store
        self.metrics = metrics
        self.api_key = api_key
        self.base_url = base_url
        self.rate = RateLimit(rate_per_minute)
        self.polling = polling or Polling()
        self.sandbox_options = sandbox_options or {}
        self._enricher: Enricher | None = None
        self._sandbox: BaseWSGIServer | None = None
        self._lock = threading.Lock()

    def get(self) -> Enricher:
        """The enricher (built on first use)."""
        with self._lock:
            if self._enricher is None:
                self._enricher = self._build()
            return self._enricher

    def _build(self) -> Enricher:
        key, base_url = self.api_key, self.base_url
        if not key:
            from ..sandbox import SandboxConfig, create_sandbox

            config = SandboxConfig(rate_per_minute=self.rate.per_minute, **self.sandbox_options)
            self._sandbox = make_server("127.0.0.1", 0, create_sandbox(config), threaded=True,
                                        request_handler=_QuietHandler)
            threading.Thread(target=self._sandbox.serve_forever, daemon=True,
                             name="sixtyfour-sandbox").start()
            key, base_url = config.api_key, f"http://127.0.0.1:{self._sandbox.port}"
            log.warning("SIXTYFOUR_API_KEY is not set: enrichment uses the built-in SANDBOX at "
                        "%s, which returns SIMULATED data", base_url)
        # Results are reused only from the same API and key: the sandbox's made-up answers
        # (on its own port each start) are never taken for real ones.
        namespace = f"{base_url}|{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        # One budget per key for every process on this database, named by a digest.
        budget = SharedRateBudget(RateBudgets(self.store),
                                  hashlib.sha256(namespace.encode()).hexdigest(), self.rate)
        client = SixtyfourClient(make_http(key, base_url), budget, metrics=self.metrics)
        return Enricher(client, UpstreamJobs(self.store), polling=self.polling,
                        metrics=self.metrics, webhook_url=self.webhook_url,
                        namespace=namespace)

    def close(self) -> None:
        """Stop the enricher's workers and the sandbox, if they were started."""
        with self._lock:
            if self._enricher is not None:
                self._enricher.close()
                self._enricher.client.http.close()
                self._enricher = None
            if self._sandbox is not None:
                self._sandbox.shutdown()
                self._sandbox.server_close()
