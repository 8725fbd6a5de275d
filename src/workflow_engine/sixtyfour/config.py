"""Limits, timeouts and endpoints of the Sixtyfour API: value objects with defaults, here
and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

__all__ = [
    "BULK_KINDS",
    "BULK_MAX_LEADS",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "ENDPOINTS",
    "Polling",
    "RateLimit",
    "Retries",
]

DEFAULT_BASE_URL = "https://api.sixtyfour.ai"
# Submitting and polling answer quickly; only the synchronous endpoints (which we do not
# use) take minutes.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)

# Our name for a kind of job -> its asynchronous endpoint.
ENDPOINTS = {
    "enrich_lead": "/enrich-lead-async",
    "enrich_company": "/enrich-company-async",
    "find_email": "/find-email-async",
    "find_phone": "/find-phone-async",
    "find_email_bulk": "/find-email-bulk-async",
}
# A kind that can also be asked for many subjects in one request -> that bulk kind, and
# the field of the kind's own body that holds the subject.
BULK_KINDS = {"find_email": ("find_email_bulk", "lead")}
# The most subjects one bulk request may carry.
BULK_MAX_LEADS = 100


@dataclass(frozen=True)
class RateLimit:
    """The key's budget: every request counts, submissions and polls alike.

    Requests are paced a little under the limit (``headroom``): a request that leaves
    late (a busy thread, a slow reservation) then still finds the API's window under its
    limit, instead of costing a 429 and a pause of everyone's requests."""

    per_minute: int = 500
    headroom: float = 0.02

    @property
    def per_second(self) -> float:
        """Requests per second, as paced: the limit less the headroom."""
        return self.per_minute * (1 - self.headroom) / 60


@dataclass(frozen=True)
class Retries:
    """Exponential backoff with full jitter for 429, 5xx, timeouts and network errors."""

    attempts: int = 8
    base_seconds: float = 0.5
    cap_seconds: float = 60.0


@dataclass(frozen=True)
class Polling:
    """When to ask how a job is doing.

    A job is polled first when it is about as old as jobs of its kind take (learnt from
    the jobs that completed, starting from ``expected_seconds``), then at a fraction of
    that, never more often than ``min_interval`` nor less than ``max_interval``.
    """

    expected_seconds: dict[str, float] = field(default_factory=lambda: {
        "enrich_lead": 120.0, "enrich_company": 240.0, "find_email": 5.0,
        "find_phone": 5.0, "find_email_bulk": 10.0,
    })
    min_interval: float = 0.5
    max_interval: float = 60.0
    repoll_fraction: float = 0.25
    max_in_flight: int = 5000
