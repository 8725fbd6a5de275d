"""Prometheus metrics: one registry per application, exposed at ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .core import Event, EventType

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BLOCK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


class _InstancesByStatus(Collector):
    """Instances by status, counted in the database when scraped."""

    def __init__(self, count: Callable[[], dict[str, int]]) -> None:
        self._count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "workflow_instances", "Instances by status.", labels=["status"]
        )
        for status, value in sorted(self._count().items()):
            family.add_metric([status], value)
        yield family


class Metrics:
    """Every metric the engine keeps."""

    def __init__(self, instances_by_status: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "workflow_http_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=registry)
        self.latency = Histogram(
            "workflow_http_request_duration_seconds", "HTTP request latency.",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=registry)
        self.transitions = Counter(
            "workflow_transitions", "Actions fired, by definition and trigger.",
            ["definition", "trigger"], registry=registry)
        self.blocks = Counter(
            "workflow_blocks", "Block runs by type and outcome (succeeded, failed, "
            "cancelled).", ["block", "outcome"], registry=registry)
        self.block_duration = Histogram(
            "workflow_block_duration_seconds", "Block run time by type.", ["block"],
            buckets=BLOCK_BUCKETS, registry=registry)
        self.upstream_requests = Counter(
            "workflow_upstream_requests", "Requests to the enrichment API by endpoint and "
            "status.", ["endpoint", "status"], registry=registry)
        self.rate_budget_wait = Histogram(
            "workflow_rate_budget_wait_seconds", "Time spent waiting for the shared "
            "enrichment rate budget.", buckets=LATENCY_BUCKETS, registry=registry)
        self.rows_enriched = Counter(
            "workflow_rows_enriched", "Rows enriched, by block.", ["block"], registry=registry)
        self.event_streams = Gauge(
            "workflow_event_streams", "Event streams open in this process.",
            registry=registry)
        self.event_streams_ended = Counter(
            "workflow_event_streams_ended", "Event streams ended, by reason (completed, "
            "expired, disconnected).", ["reason"], registry=registry)
        registry.register(_InstancesByStatus(instances_by_status))
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            # Looking a child up by its labels takes a lock and a tuple of strings; routes,
            # methods and statuses are few, so each pair is looked up once.
            children = (self.requests.labels(route, method, str(status)),
                        self.latency.labels(route, method))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_events(self, definition_id: str, events: Iterable[Event]) -> None:
        """Count what committed history events say happened."""
        for event in events:
            data: dict[str, Any] = event.data or {}
            if event.type is EventType.ACTION_FIRED:
                self.transitions.labels(definition_id, data.get("trigger", "manual")).inc()
            elif event.type in _OUTCOMES:
                block = data.get("block", "unknown")
                self.blocks.labels(block, _OUTCOMES[event.type]).inc()
                if "started_at" in data and "finished_at" in data:
                    seconds = (data["finished_at"] - data["started_at"]) / 1000
                    self.block_duration.labels(block).observe(max(seconds, 0))


_OUTCOMES = {
    EventType.BLOCK_SUCCEEDED: "succeeded",
    EventType.BLOCK_FAILED: "failed",
    EventType.BLOCK_CANCELLED: "cancelled",
}
