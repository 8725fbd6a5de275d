"""Blocks, beyond running them: which types there are, what a run of a definition's blocks
will ask of the enrichment API, and the API's reports of the jobs the blocks submitted.

Estimates and reports need the enrichment the blocks share (its rate, its webhook, the
jobs it waits on), not the runner: any process answers them the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..blocks import Catalog
from ..blocks.estimate import RunEstimate, estimate_run
from ..core import Workflow
from ..sixtyfour.config import RateLimit
from .instances import Instances

if TYPE_CHECKING:
    from ..sixtyfour import Enrichment

__all__ = ["Blocks"]


class Blocks:
    """The catalog of block types and the enrichment its blocks share."""

    def __init__(self, instances: Instances, catalog: Catalog, *,
                 enrichment: Enrichment | None = None) -> None:
        self.instances = instances
        self.catalog = catalog
        self.enrichment = enrichment

    def types(self) -> list[dict[str, Any]]:
        """Every block type: what it does, its parameters' JSON schema, what it needs and
        adds."""
        return self.catalog.entries()

    def estimate(self, definition_id: str, version: int | None,
                 inputs: dict[str, dict[str, Any]]) -> tuple[Workflow, RunEstimate]:
        """What a start with ``inputs`` would run, and what that run will ask of the
        upstream API; raises as the start would."""
        workflow = self.instances.planned_run(definition_id, version, inputs)
        enrichment = self.enrichment
        rate = enrichment.rate if enrichment is not None else RateLimit()
        # A webhook reports a job's end, so nothing is polled for it.
        webhooks = enrichment is not None and enrichment.webhook_url is not None
        return workflow, estimate_run(self.catalog, workflow, inputs,
                                      per_second=rate.per_second, per_minute=rate.per_minute,
                                      polls_per_row=0 if webhooks else 1)

    def deliver_webhook(self, payload: object) -> bool | None:
        """A finished job, as the enrichment API's webhook reports it: True if taken; None
        for a task that finished already (a poll got there first); False for anything
        that is no report of a task a process on this database waits on."""
        if not isinstance(payload, dict) or self.enrichment is None:
            return False
        return self.enrichment.get().deliver_webhook(payload)
